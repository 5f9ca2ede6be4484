"""Public signup: validating a form post, the abuse controls, and subscribing.

The public endpoint has no CSRF protection (it must take cross-site posts), so
every post goes through :func:`process`, which applies, in order: the honeypot,
the minimum fill time, the rate limits per IP and per form, field validation,
the rate limit per target address (across all accounts), the DNS check and the
blocklist. Its answer depends only on the form, never on whether the address
was new, pending or already subscribed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from lists import addresses, blocklist, mxcheck, ratelimit, subscriptions
from lists.fields import clean_value
from lists.models import (
    CustomField,
    MailingList,
    SignupForm,
    Subscriber,
    Subscription,
    SuppressedAddress,
)
from mailpanel.lib import signing

logger = logging.getLogger(__name__)

Status = Subscription.Status
HONEYPOT = "website"
TIMESTAMP = "mp_ts"
NON_FIELD = "__all__"


@dataclass(frozen=True)
class FieldSpec:
    """One input of a public form: ``name`` is the input's name attribute."""

    name: str
    label: str
    required: bool
    type: str = "text"
    choices: tuple[str, ...] = ()
    custom_field: CustomField | None = None


@dataclass
class SignupResult:
    status: int = 200
    errors: dict[str, list[str]] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ConfirmResult:
    confirmed: list[Subscription]
    mailing_list: MailingList | None
    form: SignupForm | None


# --- The form's fields ------------------------------------------------------------------


def form_fields(form: SignupForm) -> list[FieldSpec]:
    """The inputs of a form in order: e-mail first, then the configured ones."""
    specs = [FieldSpec("email", "E-mail address", True, "email")]
    config = [e for e in (form.field_config or []) if isinstance(e, dict)]
    custom: dict[str, CustomField] = {}
    if any(str(e.get("key", "")).startswith("field:") for e in config):
        custom = {
            f.key: f for f in CustomField.objects.filter(account_id=form.account_id, in_forms=True)
        }
    for entry in config:
        key = str(entry.get("key", ""))
        label = str(entry.get("label") or "")
        required = bool(entry.get("required"))
        if key == "name":
            specs.append(FieldSpec("name", label or "Name", required))
        elif key.startswith("field:") and key[6:] in custom:
            cf = custom[key[6:]]
            specs.append(
                FieldSpec(
                    f"f_{cf.key}",
                    label or cf.label,
                    required,
                    cf.type,
                    tuple(str(c) for c in cf.choices or ()),
                    cf,
                )
            )
    return specs


def form_lists(form: SignupForm) -> list[MailingList]:
    # Only the account's own lists, even if the M2M was tampered with in the admin.
    return list(form.lists.filter(owner_id=form.account_id).order_by("name", "id"))


def result_message(form: SignupForm, lists: list[MailingList]) -> str:
    """The success answer: depends on the form's lists only, never on the address."""
    if any(ml.double_opt_in for ml in lists):
        return form.check_inbox_text
    return form.success_text


# --- Validation -------------------------------------------------------------------------


def _first(data: object, name: str) -> str:
    value = data.get(name, "") if hasattr(data, "get") else ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else str(value)


def _many(data: object, name: str) -> list[str]:
    if hasattr(data, "getlist"):
        return [str(v) for v in data.getlist(name)]
    value = data.get(name, []) if hasattr(data, "get") else []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


@dataclass
class CleanSignup:
    email: str = ""
    name: str = ""
    fields: dict[str, object] = field(default_factory=dict)
    lists: list[MailingList] = field(default_factory=list)


def validate(
    form: SignupForm, data: object, lists: list[MailingList]
) -> tuple[CleanSignup, dict[str, list[str]]]:
    """Checks the posted values against the form; returns (clean values, errors by input)."""
    clean = CleanSignup()
    errors: dict[str, list[str]] = {}
    for spec in form_fields(form):
        raw = _first(data, spec.name).strip()
        if not raw:
            if spec.required:
                errors[spec.name] = ["This field is required."]
            continue
        if spec.name == "email":
            try:
                clean.email = addresses.normalise(raw)
            except addresses.InvalidAddress as exc:
                errors["email"] = [f"Enter a valid e-mail address: {exc}."]
        elif spec.name == "name":
            if len(raw) > 200:
                errors["name"] = ["Use at most 200 characters."]
            clean.name = raw[:200]
        elif spec.custom_field is not None:
            try:
                value = clean_value(spec.custom_field, raw)
            except ValidationError as exc:
                errors[spec.name] = list(exc.messages)
                continue
            if value is not None:
                clean.fields[spec.custom_field.key] = value
    if form.consent_text and _first(data, "consent") not in ("on", "1", "true", "yes"):
        errors["consent"] = ["Please give your consent to subscribe."]
    if form.allow_list_choice and len(lists) > 1:
        chosen = set(_many(data, "lists"))
        clean.lists = [ml for ml in lists if str(ml.uuid) in chosen]
        if not clean.lists:
            errors["lists"] = ["Choose at least one list."]
    else:
        clean.lists = lists
    return clean, errors


# --- The whole post ---------------------------------------------------------------------


def _fill_time_ok(form: SignupForm, data: object) -> bool:
    try:
        elapsed = signing.seconds_since_rendered(_first(data, TIMESTAMP), str(form.uuid))
    except signing.BadToken:
        return False
    return elapsed >= settings.SIGNUP_MIN_FILL_SECONDS


def process(form: SignupForm, data: object, *, ip: str, user_agent: str) -> SignupResult:
    """Validates and applies one signup post; returns what to answer.

    Queues the confirmation mail (after commit) for subscriptions that need one.
    Bots (honeypot), blocked addresses and addresses over their rate limit get the
    same answer as a real signup and nothing happens.
    """
    lists = form_lists(form)
    success = SignupResult(message=result_message(form, lists))
    if _first(data, HONEYPOT):
        logger.info("signup form %s: honeypot filled from %s", form.uuid, ip)
        return success
    if not _fill_time_ok(form, data):
        return SignupResult(
            400, {NON_FIELD: ["That was very fast. Please check the form and send it again."]}
        )
    if not ratelimit.hit("signup-ip", ip, settings.SIGNUP_RATE_PER_IP):
        return SignupResult(429, {NON_FIELD: ["Too many signups from your address. Try later."]})
    if not ratelimit.hit("signup-form", str(form.uuid), settings.SIGNUP_RATE_PER_FORM):
        return SignupResult(429, {NON_FIELD: ["Too many signups right now. Try again later."]})
    if not lists:
        return SignupResult(400, {NON_FIELD: ["This form is not open for signups."]})
    clean, errors = validate(form, data, lists)
    if errors:
        return SignupResult(400, errors)
    key = addresses.comparison_key(clean.email)
    if not ratelimit.hit("signup-address", key, settings.SIGNUP_RATE_PER_ADDRESS):
        logger.info("signup form %s: address rate limit for a target address", form.uuid)
        return success
    if not mxcheck.domain_accepts_mail(addresses.domain_of(clean.email)):
        return SignupResult(400, {"email": ["This address's domain cannot receive e-mail."]})
    if blocklist.is_blocked(clean.email, form.account):
        return success
    consent = {
        "time": timezone.now().isoformat(),
        "ip": ip,
        "user_agent": user_agent[:500],
        "form": str(form.uuid),
        "consent_text": form.consent_text,
        "source": "form",
    }
    apply(form, clean, consent)
    return success


def apply(form: SignupForm, clean: CleanSignup, consent: dict) -> list[int]:
    """Subscribes the address to the chosen lists; returns the subscriptions to confirm.

    An existing subscriber's name and fields are left alone: an anonymous post must
    not change someone's data. Confirmed, bounced and complained subscriptions stay
    as they are; unsubscribed ones go back through double opt-in; pending ones are
    mailed again only after the cool-down.
    """
    try:
        return _apply(form, clean, consent)
    except IntegrityError:
        # A concurrent signup of the same new address won the insert: run again, and
        # this time find its subscriber (cheaper than a savepoint around every insert).
        return _apply(form, clean, consent)


@transaction.atomic
def _apply(form: SignupForm, clean: CleanSignup, consent: dict) -> list[int]:
    subscriber, created = subscriptions.find_or_create_subscriber(
        form.account, clean.email, name=clean.name, fields=clean.fields
    )
    now = timezone.now()
    cooldown = now - timedelta(minutes=settings.SIGNUP_CONFIRM_COOLDOWN_MINUTES)
    note = f"signup form {form.uuid}"
    to_confirm: list[int] = []
    confirmed_now: list[int] = []
    existing = {}
    if not created:
        existing = {
            s.mailing_list_id: s
            for s in Subscription.objects.select_for_update().filter(
                subscriber=subscriber, mailing_list__in=clean.lists
            )
        }
    for mailing_list in clean.lists:
        subscription = existing.get(mailing_list.id)
        if subscription is None:
            status = Status.PENDING if mailing_list.double_opt_in else Status.CONFIRMED
            subscription, _ = subscriptions.subscribe(
                mailing_list, subscriber, status=status, source=Subscription.Source.FORM, note=note
            )
            (to_confirm if status == Status.PENDING else confirmed_now).append(subscription.id)
        elif subscription.status == Status.PENDING:
            sent = subscription.confirmation_sent_at
            if sent is None or sent < cooldown:
                to_confirm.append(subscription.id)
        elif subscription.status == Status.UNSUBSCRIBED:
            subscriptions.change_status(
                subscription, Status.PENDING, source=Subscription.Source.FORM, note=note
            )
            to_confirm.append(subscription.id)
    if confirmed_now:
        _record_consent(subscriber, consent)
        for subscription_id in confirmed_now:
            _queue_welcome(subscription_id)
    if to_confirm:
        Subscription.objects.filter(id__in=to_confirm).update(confirmation_sent_at=now)
        _queue_confirmation(to_confirm, form.id)
    return to_confirm


def _queue_confirmation(subscription_ids: list[int], form_id: int) -> None:
    from lists import tasks

    def queue() -> None:
        try:
            tasks.send_confirmation.delay(subscription_ids, form_id)
        except Exception:  # noqa: BLE001
            # The broker is down: the signup stands, and clearing the mark lets the next
            # signup of this address mail at once instead of waiting for the cool-down.
            logger.exception("could not queue the confirmation of %s", subscription_ids)
            Subscription.objects.filter(id__in=subscription_ids).update(confirmation_sent_at=None)

    transaction.on_commit(queue)


def _queue_welcome(subscription_id: int) -> None:
    from lists import tasks

    def queue() -> None:
        try:
            tasks.send_welcome.delay(subscription_id)
        except Exception:  # noqa: BLE001
            logger.exception("could not queue the welcome mail of %s", subscription_id)

    transaction.on_commit(queue)


def _record_consent(subscriber: Subscriber, consent: dict) -> None:
    record = dict(subscriber.consent or {})
    history = list(record.get("history", []))[-19:]
    history.append(consent)
    record.update(consent)
    record["history"] = history
    Subscriber.objects.filter(id=subscriber.id).update(consent=record)
    subscriber.consent = record


# --- Confirmation -----------------------------------------------------------------------


def read_confirmation(token: str) -> ConfirmResult:
    """The subscriptions a confirmation link names; raises signing.BadToken if it is bad,
    expired, or names nothing that can still be confirmed."""
    data = signing.read_confirm_token(token, settings.PENDING_EXPIRY_DAYS * 86400)
    subs = list(
        Subscription.objects.filter(id__in=data.subscription_ids)
        .select_related("mailing_list", "subscriber")
        .order_by("id")
    )
    usable = [s for s in subs if s.status in (Status.PENDING, Status.CONFIRMED)]
    if not usable or len({s.subscriber_id for s in usable}) != 1:
        raise signing.BadToken("nothing to confirm")
    form = SignupForm.objects.filter(id=data.form_id).first() if data.form_id else None
    return ConfirmResult(usable, usable[0].mailing_list, form)


@transaction.atomic
def confirm(token: str, *, ip: str, user_agent: str) -> ConfirmResult:
    """Confirms the pending subscriptions of a link and records consent.

    Raises signing.BadToken. Confirming twice is harmless. Queues welcome mails.
    """
    result = read_confirmation(token)
    subscriber = result.confirmed[0].subscriber
    changed = []
    for subscription in result.confirmed:
        if subscription.status == Status.PENDING and subscriptions.change_status(
            subscription,
            Status.CONFIRMED,
            source=Subscription.Source.FORM,
            note="confirmed through the e-mail link",
        ):
            changed.append(subscription.id)
    if changed:
        _record_consent(
            subscriber,
            {
                "time": timezone.now().isoformat(),
                "ip": ip,
                "user_agent": user_agent[:500],
                "form": str(result.form.uuid) if result.form else "",
                "consent_text": result.form.consent_text if result.form else "",
                "source": "form",
                "double_opt_in": True,
                "lists": [str(s.mailing_list.uuid) for s in result.confirmed],
            },
        )
        for subscription_id in changed:
            _queue_welcome(subscription_id)
        # The person opted in again by themselves: an earlier erasure no longer suppresses.
        SuppressedAddress.objects.filter(
            account_id=subscriber.account_id,
            address_hash=hashlib.sha256(
                addresses.comparison_key(subscriber.email).encode("utf-8")
            ).hexdigest(),
        ).delete()
    return result


# --- Expiry -----------------------------------------------------------------------------


def expire_pending(now: object | None = None) -> int:
    """Removes form subscriptions left pending past PENDING_EXPIRY_DAYS; returns how many.

    A subscriber left with no subscription at all is deleted too: an address someone
    typed into a form and never confirmed is not kept.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PENDING_EXPIRY_DAYS)
    stale = Subscription.objects.filter(
        status=Status.PENDING, source=Subscription.Source.FORM, status_changed_at__lt=cutoff
    )
    removed = 0
    for subscription in stale.iterator(chunk_size=500):
        with transaction.atomic():
            subscriptions.remove(subscription)
            removed += 1
            if not Subscription.objects.filter(subscriber_id=subscription.subscriber_id).exists():
                Subscriber.objects.filter(id=subscription.subscriber_id).delete()
    return removed
