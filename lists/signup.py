"""Public signup: validating a form post, the abuse controls, and subscribing.

The public endpoint has no CSRF protection (it must take cross-site posts), so
every post goes through :func:`process`, which applies, in order: the honeypot,
the minimum fill time, the rate limits per IP and per form, field validation,
the rate limit per target address (across all accounts), the DNS check and the
blocklist. Its answer depends only on the form, never on whether the address
was new, pending or already subscribed.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.utils import timezone

from lists import (
    addresses,
    blocklist,
    confirmation,
    mxcheck,
    preferences,
    ratelimit,
    subscriptions,
)
from lists.fields import clean_value, unstorable
from lists.models import (
    CustomField,
    MailingList,
    SignupForm,
    Subscriber,
    Subscription,
)
from mailpanel.lib import signing

logger = logging.getLogger(__name__)

Status = Subscription.Status
Source = Subscription.Source
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


def open_form(form_id: object) -> SignupForm | None:
    """The enabled form with this public id, or None; its lists come in the same query.

    :func:`form_lists` then answers without a query. Every public post starts here,
    so the statement is written once by hand: building it through the ORM on every
    request cost more CPU than the rest of a signup's queries together.
    """
    connection = connections[router.db_for_read(SignupForm)]
    uuid_field = SignupForm._meta.get_field("uuid")
    params = [uuid_field.get_db_prep_value(form_id, connection), True]
    with connection.cursor() as cursor:
        cursor.execute(_open_form_sql(connection), params)
        rows = cursor.fetchall()
    if not rows:
        return None
    width = len(SignupForm._meta.concrete_fields)
    form = _from_row(SignupForm, rows[0][:width], connection)
    form._loaded_lists = [
        _from_row(MailingList, row[width:], connection) for row in rows if row[width] is not None
    ]
    return form


def _open_form_sql(connection: BaseDatabaseWrapper) -> str:
    q = connection.ops.quote_name
    form_meta, list_meta = SignupForm._meta, MailingList._meta
    m2m = form_meta.get_field("lists")
    columns = [f"f.{q(f.column)}" for f in form_meta.concrete_fields]
    columns += [f"l.{q(f.column)}" for f in list_meta.concrete_fields]
    # LEFT JOINs: a form without (own) lists still comes back, with empty list columns.
    # Only the account's own lists, even if the M2M was tampered with in the admin.
    return (
        f"SELECT {', '.join(columns)} FROM {q(form_meta.db_table)} f"  # noqa: S608
        f" LEFT JOIN {q(m2m.m2m_db_table())} fl"
        f" ON fl.{q(m2m.m2m_column_name())} = f.{q('id')}"
        f" LEFT JOIN {q(list_meta.db_table)} l ON l.{q('id')} = fl.{q(m2m.m2m_reverse_name())}"
        f" AND l.{q('owner_id')} = f.{q('account_id')}"
        f" WHERE f.{q('uuid')} = %s AND f.{q('enabled')} = %s"
        f" ORDER BY l.{q('name')}, l.{q('id')}"
    )


M = TypeVar("M", bound=Model)
# Per database connection: the columns of a model with the ORM's converters for them.
_converters: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict] = weakref.WeakKeyDictionary()


def _from_row(model: type[M], values: Sequence[object], connection: BaseDatabaseWrapper) -> M:
    """A model instance from all its concrete columns, converted as a queryset would."""
    known = _converters.setdefault(connection, {})
    if model not in known:
        table = model._meta.db_table
        known[model] = [
            (col, connection.ops.get_db_converters(col) + f.get_db_converters(connection))
            for f in model._meta.concrete_fields
            for col in [f.get_col(table)]
        ]
    converted = []
    for value, (col, converters) in zip(values, known[model], strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, None, converted)


def form_lists(form: SignupForm) -> list[MailingList]:
    loaded = getattr(form, "_loaded_lists", None)
    if loaded is not None:
        return list(loaded)
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
    # The address was erased at the subscriber's request: only a confirmed opt-in brings
    # it back, whatever the list's double opt-in setting.
    erased: bool = False


def validate(
    form: SignupForm, data: object, lists: list[MailingList]
) -> tuple[CleanSignup, dict[str, list[str]]]:
    """Checks the posted values against the form; returns (clean values, errors by input)."""
    clean = CleanSignup()
    errors: dict[str, list[str]] = {}
    wording = lists[0] if lists else None  # the owner's texts: the form's first list's
    for spec in form_fields(form):
        raw = _first(data, spec.name).strip()
        if not raw:
            if spec.required:
                errors[spec.name] = [confirmation.text(wording, "signup_error_required")]
            continue
        problem = unstorable(raw)
        if problem:
            # PostgreSQL refuses these outright; a field error, not a DataError.
            errors[spec.name] = [f"This field {problem}."]
            continue
        if spec.name == "email":
            try:
                clean.email = addresses.normalise(raw)
            except addresses.InvalidAddress as exc:
                message = confirmation.text(wording, "signup_error_email", reason=str(exc))
                errors["email"] = [message]
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
    # "on" from a checkbox, "yes" from the embeds, true from a JSON post.
    if form.consent_text and _first(data, "consent").lower() not in ("on", "1", "true", "yes"):
        errors["consent"] = [confirmation.text(wording, "signup_error_consent")]
    if form.allow_list_choice and len(lists) > 1:
        chosen = set(_many(data, "lists"))
        clean.lists = [ml for ml in lists if str(ml.uuid) in chosen]
        if not clean.lists:
            errors["lists"] = [confirmation.text(wording, "signup_error_lists")]
    else:
        clean.lists = lists
    return clean, errors


# --- The whole post ---------------------------------------------------------------------


# The minimum fill time, and why the plain HTML embed has no stamp.
#
# The hosted page and the script embed get a fresh signed stamp each time they are shown
# (the page renders it, the script fetches it from embed.json). A post carrying a stamp
# must carry one of this form's, at least SIGNUP_MIN_FILL_SECONDS and at most
# SIGNUP_STAMP_MAX_AGE_HOURS old: too fast is a bot, too old is a stamp copied and reused.
# The plain HTML embed is pasted once into someone else's page, so any stamp in it would
# be as old as the paste: it carries none. A post without a stamp is accepted only on the
# HTML endpoint (the JSON endpoint of the script embed always needs one), only past the
# honeypot, and only within the stricter SIGNUP_RATE_PER_IP_UNSTAMPED. A stamp that is
# present but bad never falls back to that path.
STAMP_OK, STAMP_MISSING, STAMP_BAD, STAMP_FAST, STAMP_OLD = "ok", "missing", "bad", "fast", "old"
# The text (lists.confirmation.DEFAULT_TEXTS) each refused stamp answers with.
STAMP_ERRORS = {
    STAMP_MISSING: "signup_error_no_stamp",
    STAMP_BAD: "signup_error_too_fast",
    STAMP_FAST: "signup_error_too_fast",
    STAMP_OLD: "signup_error_too_old",
}


def stamp_state(form: SignupForm, data: object) -> str:
    """What the post's fill-time stamp says: one of the STAMP_* values."""
    stamp = _first(data, TIMESTAMP)
    if not stamp:
        return STAMP_MISSING
    try:
        elapsed = signing.seconds_since_rendered(stamp, str(form.uuid))
    except signing.BadToken:
        return STAMP_BAD
    if elapsed < settings.SIGNUP_MIN_FILL_SECONDS:
        return STAMP_FAST
    if elapsed > settings.SIGNUP_STAMP_MAX_AGE_HOURS * 3600:
        return STAMP_OLD
    return STAMP_OK


def process(
    form: SignupForm,
    data: object,
    *,
    ip: str,
    user_agent: str,
    stamp_optional: bool = False,
) -> SignupResult:
    """Validates and applies one signup post; returns what to answer.

    ``stamp_optional``: the post may come from the plain HTML embed, which has no
    fill-time stamp (see the rule above :func:`stamp_state`).
    Queues the confirmation mail (after commit) for subscriptions that need one.
    Bots (honeypot), blocked addresses and addresses over their rate limit get the
    same answer as a real signup and nothing happens.
    """
    lists = form_lists(form)
    wording = lists[0] if lists else None
    success = SignupResult(message=result_message(form, lists))
    if _first(data, HONEYPOT):
        logger.info("signup form %s: honeypot filled from %s", form.uuid, ip)
        return success
    stamp = stamp_state(form, data)
    unstamped = stamp == STAMP_MISSING and stamp_optional
    if stamp != STAMP_OK and not unstamped:
        return SignupResult(400, {NON_FIELD: [confirmation.text(wording, STAMP_ERRORS[stamp])]})
    limits = [
        ("signup-ip", ip, settings.SIGNUP_RATE_PER_IP),
        ("signup-form", str(form.uuid), settings.SIGNUP_RATE_PER_FORM),
    ]
    if unstamped:
        # First, so a stamp-less flood never counts against the form's own limit.
        limits.insert(0, ("signup-ip-unstamped", ip, settings.SIGNUP_RATE_PER_IP_UNSTAMPED))
    exceeded = ratelimit.first_exceeded(limits)
    if exceeded in ("signup-ip", "signup-ip-unstamped"):
        return SignupResult(429, {NON_FIELD: [confirmation.text(wording, "signup_error_rate_ip")]})
    if exceeded == "signup-form":
        message = confirmation.text(wording, "signup_error_rate_form")
        return SignupResult(429, {NON_FIELD: [message]})
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
        return SignupResult(400, {"email": [confirmation.text(wording, "signup_error_domain")]})
    # One statement for the blocklist and the erased addresses: the hot path's budget.
    blocked, clean.erased = blocklist.is_blocked_or_erased(
        clean.email, form.account_id, preferences.address_hash(clean.email)
    )
    if blocked:
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


@transaction.atomic
def apply(form: SignupForm, clean: CleanSignup, consent: dict) -> list[int]:
    """Subscribes the address to the chosen lists; returns the subscriptions to confirm.

    An existing subscriber's name and fields are left alone: an anonymous post must
    not change someone's data. Confirmed, bounced and complained subscriptions stay
    as they are; unsubscribed ones go back through double opt-in; pending ones are
    mailed again only after the cool-down. A subscription left pending or made
    pending by this signup records the form as its source, whatever created it.
    Concurrent signups of the same address end with one subscriber, one subscription
    per list and one confirmation mail.
    """
    subscriber, created = subscriptions.find_or_create_subscriber(
        form.account_id, clean.email, name=clean.name, fields=clean.fields
    )
    now = timezone.now()
    note = f"signup form {form.uuid}"
    existing = {} if created else _subscriptions_of(subscriber, clean.lists)
    added: list[Subscription] = []
    to_confirm: list[int] = []
    resent: list[int] = []
    taken_over: list[int] = []
    for mailing_list in clean.lists:
        subscription = existing.get(mailing_list.id)
        if subscription is None:
            subscription, is_new = _find_or_add(mailing_list, subscriber, now, erased=clean.erased)
            if is_new:
                added.append(subscription)
                if subscription.status == Status.PENDING:
                    to_confirm.append(subscription.id)
                continue
        if _needs_confirmation(subscription, now, note):
            to_confirm.append(subscription.id)
            resent.append(subscription.id)
        if subscription.status == Status.PENDING and subscription.source != Source.FORM:
            # Waiting for this signup's opt-in now, whatever added it first.
            taken_over.append(subscription.id)
    confirmed_now = [s.id for s in added if s.status == Status.CONFIRMED]
    if confirmed_now:
        _record_consent(subscriber, consent)
        for subscription_id in confirmed_now:
            _queue_welcome(subscription_id)
    if resent:
        Subscription.objects.filter(id__in=resent).update(confirmation_sent_at=now)
    if taken_over:
        Subscription.objects.filter(id__in=taken_over).update(source=Source.FORM)
    if to_confirm:
        _queue_confirmation(to_confirm, form.id)
    subscriptions.count_added(added)  # last: it locks the lists' rows until COMMIT
    return to_confirm


def _find_or_add(
    mailing_list: MailingList, subscriber: Subscriber, now: datetime, *, erased: bool = False
) -> tuple[Subscription, bool]:
    """(subscription, whether this signup created it)."""
    while True:
        # The confirmation is queued with the insert, so its time goes in with the row.
        opt_in = mailing_list.double_opt_in or erased
        status = Status.PENDING if opt_in else Status.CONFIRMED
        added = subscriptions.add(
            mailing_list.id,
            subscriber.id,
            status=status,
            source=Subscription.Source.FORM,
            confirmation_sent_at=now if status == Status.PENDING else None,
        )
        if added is not None:
            return added, True
        # A concurrent signup put the address on this list first: go on with its row.
        found = _subscriptions_of(subscriber, [mailing_list]).get(mailing_list.id)
        if found is not None:
            return found, False


def _subscriptions_of(subscriber: Subscriber, lists: list[MailingList]) -> dict[int, Subscription]:
    # Locked: a concurrent signup of the same address waits here, then sees our
    # confirmation_sent_at and respects the cool-down.
    rows = Subscription.objects.select_for_update().filter(
        subscriber=subscriber, mailing_list__in=lists
    )
    return {s.mailing_list_id: s for s in rows}


def _needs_confirmation(subscription: Subscription, now: datetime, note: str) -> bool:
    """For a subscription that existed: whether this signup mails a confirmation."""
    if subscription.status == Status.PENDING:
        sent = subscription.confirmation_sent_at
        cooldown = now - timedelta(minutes=settings.SIGNUP_CONFIRM_COOLDOWN_MINUTES)
        return sent is None or sent < cooldown
    if subscription.status == Status.UNSUBSCRIBED:
        subscriptions.change_status(
            subscription, Status.PENDING, source=Subscription.Source.FORM, note=note
        )
        return True
    return False


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
        preferences.lift_suppression(subscriber.account_id, subscriber.email)
    return result
