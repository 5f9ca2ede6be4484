"""Subscriber self-service behind signed links: unsubscribe, preferences, data export, erasure."""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import Case, F, JSONField, Q, Value, When
from django.db.models.functions import Replace

from bounces.models import BounceClass, BounceEvent, ReturnedMessage
from lists import addresses, blocklist, subscriptions
from lists.fields import clean_value, storable, unstorable
from lists.models import (
    CustomField,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionChange,
    SuppressedAddress,
)
from mailpanel.lib import signing
from sending.models import Delivery
from stats.models import TrackingEvent

logger = logging.getLogger(__name__)

Status = Subscription.Status
# Self-service writes are recorded as "panel"-less changes from a form-like source.
SOURCE = Subscription.Source.FORM


def subscription_for_unsubscribe(token: str) -> Subscription:
    """The subscription an unsubscribe token names; raises signing.BadToken."""
    data = signing.read_unsubscribe_token(token)
    subscription = (
        Subscription.objects.filter(subscriber_id=data.subscriber_id, mailing_list_id=data.list_id)
        .select_related("mailing_list", "subscriber")
        .first()
    )
    if subscription is None:
        raise signing.BadToken("no such subscription")
    return subscription


def unsubscribe(token: str, *, reason: str = "", note: str = "") -> Subscription:
    """Unsubscribes the token's subscription (idempotent); raises signing.BadToken."""
    subscription = subscription_for_unsubscribe(token)
    data = signing.read_unsubscribe_token(token)
    if subscription.status in (Status.CONFIRMED, Status.PENDING):
        campaign = f" (campaign {data.campaign_id})" if data.campaign_id else ""
        subscriptions.change_status(
            subscription,
            Status.UNSUBSCRIBED,
            source=SOURCE,
            # Free text from a public page: what PostgreSQL cannot store is dropped.
            reason=storable(reason).strip()[:2000],
            note=(note or "unsubscribed through the link") + campaign,
            campaign_id=data.campaign_id or None,
        )
    return subscription


def subscriber_for_preferences(token: str) -> Subscriber:
    subscriber_id = signing.read_preference_token(token)
    subscriber = Subscriber.objects.filter(id=subscriber_id).select_related("account").first()
    if subscriber is None:
        raise signing.BadToken("no such subscriber")
    return subscriber


def editable_fields(subscriber: Subscriber) -> list[CustomField]:
    return list(CustomField.objects.filter(account_id=subscriber.account_id, in_forms=True))


def subscriptions_of(subscriber: Subscriber) -> list[Subscription]:
    return list(
        subscriber.subscriptions.select_related("mailing_list").order_by("mailing_list__name", "id")
    )


def parse_list_ids(values: Iterable[object]) -> set[uuid.UUID]:
    """The list UUIDs among posted values; anything else is ignored (never an error)."""
    wanted = set()
    for value in values:
        try:
            wanted.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    return wanted


@dataclass
class ListChanges:
    """What a save of the preference page did: how many subscriptions changed, and the
    lists the subscriber asked back onto but may not rejoin (the address is blocked)."""

    changed: int = 0
    refused: list[MailingList] = field(default_factory=list)


@transaction.atomic
def set_lists(subscriber: Subscriber, wanted_lists: set[uuid.UUID]) -> ListChanges:
    """Turns the subscriber's lists (by public UUID) on and off.

    Only confirmed <-> unsubscribed: the link was mailed to this address, which proves
    it is theirs, so turning a list back on needs no second opt-in. A blocked address
    (lists.blocklist) is never turned back on: those lists come back in ``refused``.
    Pending, bounced and complained subscriptions are left alone.
    """
    result = ListChanges()
    wanted_list_ids = set(
        MailingList.objects.filter(
            owner_id=subscriber.account_id, uuid__in=wanted_lists
        ).values_list("id", flat=True)
    )
    rows = Subscription.objects.select_for_update().filter(subscriber=subscriber)
    blocked: bool | None = None  # asked once, and only if someone asks to rejoin
    for subscription in rows.select_related("mailing_list"):
        on = subscription.mailing_list_id in wanted_list_ids
        if on and subscription.status == Status.UNSUBSCRIBED:
            if blocked is None:
                blocked = blocklist.is_blocked(subscriber.email, subscriber.account_id)
            if blocked:
                result.refused.append(subscription.mailing_list)
                continue
            result.changed += subscriptions.change_status(
                subscription, Status.CONFIRMED, source=SOURCE, note="preference page"
            )
        elif not on and subscription.status in (Status.CONFIRMED, Status.PENDING):
            result.changed += subscriptions.change_status(
                subscription, Status.UNSUBSCRIBED, source=SOURCE, note="preference page"
            )
    return result


def unsubscribe_everywhere(subscriber: Subscriber) -> int:
    return subscriptions.set_status_everywhere(
        subscriber,
        Status.UNSUBSCRIBED,
        source=SOURCE,
        note="unsubscribed from everything on the preference page",
        only_from=[Status.CONFIRMED, Status.PENDING],
    )


def update_fields(subscriber: Subscriber, data: object) -> dict[str, str]:
    """Saves name and form fields from posted data; returns errors by input name."""
    errors: dict[str, str] = {}
    name = str(data.get("name", subscriber.name)).strip()
    if len(name) > 200:
        errors["name"] = "Use at most 200 characters."
    elif unstorable(name):
        errors["name"] = f"The name {unstorable(name)}."
    values = dict(subscriber.fields or {})
    for custom in editable_fields(subscriber):
        try:
            value = clean_value(custom, data.get(f"f_{custom.key}", ""))
        except ValidationError as exc:
            errors[f"f_{custom.key}"] = "; ".join(exc.messages)
            continue
        if value is None:
            values.pop(custom.key, None)
        else:
            values[custom.key] = value
    if not errors:
        Subscriber.objects.filter(id=subscriber.id).update(name=name, fields=values)
        subscriber.name, subscriber.fields = name, values
    return errors


def export_data(subscriber: Subscriber) -> dict:
    """Everything kept about the subscriber, as plain JSON (GDPR art. 15/20)."""
    subs = subscriptions_of(subscriber)
    history = SubscriptionChange.objects.filter(subscription__in=subs).order_by("created_at", "id")
    by_subscription: dict[int, list[dict]] = {}
    for change in history:
        by_subscription.setdefault(change.subscription_id, []).append(
            {
                "at": change.created_at.isoformat(),
                "from": change.old_status,
                "to": change.new_status,
                "source": change.source,
            }
        )
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "fields": subscriber.fields,
        "consent": subscriber.consent,
        "created_at": subscriber.created_at.isoformat(),
        "subscriptions": [
            {
                "list": s.mailing_list.name,
                "status": s.status,
                "source": s.source,
                "created_at": s.created_at.isoformat(),
                "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
                "unsubscribed_at": s.unsubscribed_at.isoformat() if s.unsubscribed_at else None,
                "unsubscribe_reason": s.unsubscribe_reason,
                "history": by_subscription.get(s.id, []),
            }
            for s in subs
        ],
        **_mail_records(subscriber),
    }


def _mail_records(subscriber: Subscriber) -> dict[str, list[dict]]:
    """What was sent to the subscriber and what came back: deliveries, bounces, events."""
    deliveries = Delivery.objects.filter(subscriber_id=subscriber.id).order_by("created_at", "id")
    bounces = BounceEvent.objects.filter(subscriber_id=subscriber.id).order_by("received_at", "id")
    events = TrackingEvent.objects.filter(
        subscriber_id=subscriber.id, account_id=subscriber.account_id
    ).order_by("occurred_at", "id")
    return {
        "deliveries": [
            {"campaign": name, "status": status, "sent_at": _iso(sent_at)}
            for name, status, sent_at in deliveries.values_list(
                "campaign__name", "status", "sent_at"
            )
        ],
        "bounces": [
            {"class": bounce_class, "at": _iso(at), "diagnostic": diagnostic}
            for bounce_class, at, diagnostic in bounces.values_list(
                "bounce_class", "received_at", "diagnostic"
            )
        ],
        "events": [
            {"kind": kind, "at": _iso(at)} for kind, at in events.values_list("kind", "occurred_at")
        ],
    }


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


ERASED_REASON = "erased at the subscriber's request"
ERASED_ERROR = (
    "{email} was erased at the subscriber's request, so it cannot be added again. "
    "It comes back only if the person signs up through a form and confirms."
)


def address_hash(address: str) -> str:
    return hashlib.sha256(addresses.comparison_key(address).encode("utf-8")).hexdigest()


def is_suppressed(account: object, address: str) -> bool:
    """True if the address was erased from the account (or account id): it is not re-added."""
    owner = {"account_id": getattr(account, "pk", account)}
    return SuppressedAddress.objects.filter(**owner, address_hash=address_hash(address)).exists()


def erased_keys(account_id: int, keys: Iterable[str]) -> set[str]:
    """The comparison keys (lower-cased addresses) among ``keys`` erased from the account.

    One query for all of them where the database takes that many parameters (PostgreSQL);
    SQLite gets them in slices of its parameter limit.
    """
    by_hash = {address_hash(key): key for key in keys}
    hashes = list(by_hash)
    size = connections[router.db_for_read(SuppressedAddress)].features.max_query_params
    size = max(1, (size or len(hashes) or 1) - 1)
    found: set[str] = set()
    for start in range(0, len(hashes), size):
        found.update(
            SuppressedAddress.objects.filter(
                account_id=account_id, address_hash__in=hashes[start : start + size]
            ).values_list("address_hash", flat=True)
        )
    return {by_hash[h] for h in found}


def drop_erased(chunk: object, account_id: int) -> None:
    """Moves an import chunk's erased rows to its rejects (lists.imports calls this).

    ``chunk`` is an ``imports.Chunk``: ``rows`` with ``key`` and ``line``, ``rejects``
    as (line, reason, raw) and ``raw`` by line.
    """
    if not chunk.rows:
        return
    erased = erased_keys(account_id, {row.key for row in chunk.rows})
    if not erased:
        return
    chunk.rejects.extend(
        (row.line, ERASED_REASON, chunk.raw.get(row.line, ""))
        for row in chunk.rows
        if row.key in erased
    )
    chunk.rows = [row for row in chunk.rows if row.key not in erased]


def lift_suppression(account_id: int, address: str) -> None:
    """The person opted in again by themselves: an earlier erasure no longer suppresses."""
    SuppressedAddress.objects.filter(
        account_id=account_id, address_hash=address_hash(address)
    ).delete()


@transaction.atomic
def erase(subscriber: Subscriber) -> None:
    """Deletes the subscriber with fields, consent and history (GDPR art. 17).

    What remains is a SHA-256 of the address in SuppressedAddress, so imports, the
    panel and single opt-in signups do not add the address again; blocklist entries
    (the owner's) stay as they are. Bounce events and the event log keep their counts
    but lose the address, the returned messages and free text. Deliveries go with the
    subscriber (their foreign key cascades), and their SMTP replies with them.
    """
    SuppressedAddress.objects.get_or_create(
        account_id=subscriber.account_id,
        address_hash=address_hash(subscriber.email),
        defaults={"reason": ERASED_REASON},
    )
    _forget_bounces(subscriber)
    _forget_tracking(subscriber)
    subscriptions.delete_subscriber(subscriber)


ERASED_MARK = "[erased]"


def _forget_bounces(subscriber: Subscriber) -> None:
    # bounces/ has no public function for this and erasure is this module's flow, so the
    # UPDATEs go through its models here. Events keep class, codes and time (the
    # soft-bounce counts and reports); the address, the raw input and the address inside
    # the diagnostic go. Events not attributed to the subscriber but naming the address
    # within the account count too.
    events = BounceEvent.objects.filter(
        Q(subscriber_id=subscriber.id)
        | Q(account_id=subscriber.account_id, recipient__iexact=subscriber.email)
    )
    rows = list(events.values_list("id", "message_id"))
    if not rows:
        return
    diagnostic = F("diagnostic")
    for spelling in {subscriber.email, subscriber.email.lower()}:
        diagnostic = Replace(diagnostic, Value(spelling), Value(ERASED_MARK))
    event_ids = [event_id for event_id, _ in rows]
    BounceEvent.objects.filter(id__in=event_ids).update(recipient="", raw="", diagnostic=diagnostic)
    message_ids = {message_id for _, message_id in rows if message_id is not None}
    _forget_returned_messages(message_ids, event_ids, subscriber.email)


def _forget_returned_messages(message_ids: set[int], event_ids: list[int], email: str) -> None:
    if not message_ids:
        return
    shared = set(
        BounceEvent.objects.filter(message_id__in=message_ids)
        .exclude(id__in=event_ids)
        .values_list("message_id", flat=True)
    )
    # A message that reported only this person is emptied whole (it may quote their mail).
    ReturnedMessage.objects.filter(id__in=message_ids - shared).update(
        raw=b"", envelope_recipient="", note="emptied: the recipient was erased on request"
    )
    # One that reports others too keeps its bytes for them, without this address. Few
    # rows (one per returned message naming the person), so one UPDATE each.
    pattern = re.compile(re.escape(email.encode("utf-8")), re.IGNORECASE)
    for message in ReturnedMessage.objects.filter(id__in=shared).only("id", "raw"):
        redacted = pattern.sub(ERASED_MARK.encode(), bytes(message.raw))
        ReturnedMessage.objects.filter(id=message.id).update(raw=redacted)


def _forget_tracking(subscriber: Subscriber) -> None:
    # stats/ has no public function for this either: one UPDATE through its model. The
    # details hold free text (unsubscribe reasons) and hashed IPs; only the bounce class
    # stays, which the rollups count by.
    TrackingEvent.objects.filter(subscriber_id=subscriber.id).update(
        details=Case(
            *(
                When(
                    details__bounce_class=value,
                    then=Value({"bounce_class": value}, output_field=JSONField()),
                )
                for value in BounceClass.values
            ),
            default=Value({}, output_field=JSONField()),
            output_field=JSONField(),
        )
    )


def lists_of_account(subscriber: Subscriber) -> list[MailingList]:
    return list(MailingList.objects.filter(owner_id=subscriber.account_id))
