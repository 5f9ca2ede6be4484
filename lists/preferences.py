"""Subscriber self-service behind signed links: unsubscribe, preferences, data export, erasure."""

from __future__ import annotations

import hashlib
import logging

from django.db import transaction

from lists import addresses, subscriptions
from lists.fields import clean_value
from lists.models import (
    CustomField,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionChange,
    SuppressedAddress,
)
from mailpanel.lib import signing

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
            reason=reason.strip()[:2000],
            note=(note or "unsubscribed through the link") + campaign,
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


@transaction.atomic
def set_lists(subscriber: Subscriber, wanted_list_ids: set[int]) -> int:
    """Turns the subscriber's lists on and off; returns how many changed.

    Only confirmed <-> unsubscribed: the link was mailed to this address, which proves
    it is theirs, so turning a list back on needs no second opt-in. Pending, bounced
    and complained subscriptions are left alone.
    """
    changed = 0
    for subscription in Subscription.objects.select_for_update().filter(subscriber=subscriber):
        on = subscription.mailing_list_id in wanted_list_ids
        if on and subscription.status == Status.UNSUBSCRIBED:
            changed += subscriptions.change_status(
                subscription, Status.CONFIRMED, source=SOURCE, note="preference page"
            )
        elif not on and subscription.status in (Status.CONFIRMED, Status.PENDING):
            changed += subscriptions.change_status(
                subscription, Status.UNSUBSCRIBED, source=SOURCE, note="preference page"
            )
    return changed


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
    values = dict(subscriber.fields or {})
    for custom in editable_fields(subscriber):
        try:
            value = clean_value(custom, data.get(f"f_{custom.key}", ""))
        except Exception as exc:  # noqa: BLE001
            errors[f"f_{custom.key}"] = "; ".join(getattr(exc, "messages", [str(exc)]))
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
    }


def address_hash(address: str) -> str:
    return hashlib.sha256(addresses.comparison_key(address).encode("utf-8")).hexdigest()


def is_suppressed(account: object, address: str) -> bool:
    """True if the address was erased from the account: imports and the API skip it."""
    return SuppressedAddress.objects.filter(
        account=account, address_hash=address_hash(address)
    ).exists()


@transaction.atomic
def erase(subscriber: Subscriber) -> None:
    """Deletes the subscriber with fields, consent and history (GDPR art. 17).

    What remains is a SHA-256 of the address in SuppressedAddress, so imports and the
    API do not add the address again; blocklist entries (the owner's) stay as they are.
    """
    SuppressedAddress.objects.get_or_create(
        account_id=subscriber.account_id,
        address_hash=address_hash(subscriber.email),
        defaults={"reason": "erased at the subscriber's request"},
    )
    subscriptions.delete_subscriber(subscriber)


def lists_of_account(subscriber: Subscriber) -> list[MailingList]:
    return list(MailingList.objects.filter(owner_id=subscriber.account_id))
