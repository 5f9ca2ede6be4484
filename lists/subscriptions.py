"""Subscribing, changing a subscription's status, and the per-list counts.

Every status change goes through :func:`change_status` (or the bulk functions
here), which records the change in the subscription's history and keeps the
list's per-status counts right. Other apps (signup forms, bounces, statistics)
call these functions; none of them writes the tables directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from lists import addresses
from lists.models import MailingList, Subscriber, Subscription, SubscriptionChange

logger = logging.getLogger(__name__)

Status = Subscription.Status
COUNT_FIELD = {
    Status.PENDING: "pending_count",
    Status.CONFIRMED: "confirmed_count",
    Status.UNSUBSCRIBED: "unsubscribed_count",
    Status.BOUNCED: "bounced_count",
    Status.COMPLAINED: "complained_count",
}


def _adjust_counts(list_id: int, old: str | None, new: str | None) -> None:
    changes = {}
    if old:
        changes[COUNT_FIELD[old]] = F(COUNT_FIELD[old]) - 1
    if new:
        changes[COUNT_FIELD[new]] = F(COUNT_FIELD[new]) + 1
    if changes:
        MailingList.objects.filter(id=list_id).update(**changes)


def recount(list_ids: Iterable[int]) -> None:
    """Recomputes the per-status counts of the given lists (after bulk work)."""
    for list_id in set(list_ids):
        rows = (
            Subscription.objects.filter(mailing_list_id=list_id)
            .values("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        counts = dict.fromkeys(COUNT_FIELD.values(), 0)
        for row in rows:
            counts[COUNT_FIELD[row["status"]]] = row["n"]
        MailingList.objects.filter(id=list_id).update(**counts)


def _timestamps_for(status: str, now: object) -> dict[str, object]:
    if status == Status.CONFIRMED:
        return {"confirmed_at": now, "unsubscribed_at": None}
    if status == Status.UNSUBSCRIBED:
        return {"unsubscribed_at": now}
    return {}


def find_or_create_subscriber(
    account: object, email: str, *, name: str = "", fields: dict | None = None
) -> tuple[Subscriber, bool]:
    """Returns (subscriber, created) for an address of the account.

    Raises addresses.InvalidAddress when the address is not usable.
    """
    email = addresses.normalise(email)
    existing = Subscriber.objects.filter(account=account).with_email(email).first()
    if existing is not None:
        return existing, False
    subscriber = Subscriber.objects.create(
        account=account,
        email=email,
        domain=addresses.domain_of(email),
        name=name,
        fields=fields or {},
    )
    return subscriber, True


@transaction.atomic
def subscribe(
    mailing_list: MailingList,
    subscriber: Subscriber,
    *,
    status: str,
    source: str,
    actor: object | None = None,
    note: str = "",
) -> tuple[Subscription, bool]:
    """Puts the subscriber on the list with the status; returns (subscription, changed).

    An existing subscription changes status only when it differs.
    """
    subscription, created = Subscription.objects.get_or_create(
        mailing_list=mailing_list,
        subscriber=subscriber,
        defaults={"status": status, "source": source, **_timestamps_for(status, timezone.now())},
    )
    if created:
        _adjust_counts(mailing_list.id, None, status)
        return subscription, True
    return subscription, change_status(subscription, status, source=source, actor=actor, note=note)


@transaction.atomic
def change_status(
    subscription: Subscription,
    new_status: str,
    *,
    source: str,
    actor: object | None = None,
    note: str = "",
    reason: str = "",
) -> bool:
    """Moves a subscription to a new status; returns False if it already had it.

    The update is conditional on the old status, so two concurrent changes
    record one history row each and never count twice.
    """
    old_status = subscription.status
    if old_status == new_status:
        return False
    now = timezone.now()
    values: dict[str, object] = {"status": new_status, "status_changed_at": now}
    values.update(_timestamps_for(new_status, now))
    if new_status == Status.UNSUBSCRIBED:
        values["unsubscribe_reason"] = reason[:2000]
    changed = Subscription.objects.filter(id=subscription.id, status=old_status).update(**values)
    if not changed:
        subscription.refresh_from_db()
        return change_status(
            subscription, new_status, source=source, actor=actor, note=note, reason=reason
        )
    for key, value in values.items():
        setattr(subscription, key, value)
    SubscriptionChange.objects.create(
        subscription=subscription,
        old_status=old_status,
        new_status=new_status,
        source=source,
        note=note[:500],
        actor=actor if getattr(actor, "pk", None) else None,
    )
    _adjust_counts(subscription.mailing_list_id, old_status, new_status)
    return True


def unsubscribe(
    subscription: Subscription, *, source: str, reason: str = "", actor: object | None = None
) -> bool:
    return change_status(
        subscription, Status.UNSUBSCRIBED, source=source, reason=reason, actor=actor
    )


@transaction.atomic
def set_status_everywhere(
    subscriber: Subscriber,
    new_status: str,
    *,
    source: str,
    note: str = "",
    only_from: Iterable[str] | None = None,
) -> int:
    """Sets the status on every list of the subscriber's account; returns how many changed.

    ``only_from`` limits the change to subscriptions currently in those statuses
    (a bounce must not turn an unsubscribed address back into anything else).
    """
    subscriptions = Subscription.objects.select_for_update().filter(subscriber=subscriber)
    if only_from is not None:
        subscriptions = subscriptions.filter(status__in=list(only_from))
    changed = 0
    for subscription in subscriptions.exclude(status=new_status):
        changed += change_status(subscription, new_status, source=source, note=note)
    return changed


def remove(subscription: Subscription) -> None:
    """Deletes a subscription (the subscriber stays in the account)."""
    with transaction.atomic():
        deleted, _ = Subscription.objects.filter(id=subscription.id).delete()
        if deleted:
            _adjust_counts(subscription.mailing_list_id, subscription.status, None)


def delete_subscriber(subscriber: Subscriber) -> None:
    """Deletes a subscriber and all their subscriptions, keeping the list counts right."""
    with transaction.atomic():
        rows = list(subscriber.subscriptions.values_list("mailing_list_id", "status"))
        subscriber.delete()
        for list_id, status in rows:
            _adjust_counts(list_id, status, None)
