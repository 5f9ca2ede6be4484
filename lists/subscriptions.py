"""Subscribing, changing a subscription's status, and the per-list counts.

Every status change goes through :func:`change_status` (or the bulk functions
here), which records the change in the subscription's history and keeps the
list's per-status counts right. Other apps (signup forms, bounces, statistics)
call these functions; none of them writes the tables directly. The signup hot
path adds subscriptions with :func:`add` and counts them with :func:`count_added`
at the end of its transaction, so a list's row is locked only for the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import Count, F
from django.db.models.functions import Coalesce, Greatest
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
    """Returns (subscriber, created) for an address of the account (or account id).

    Safe against a concurrent creation of the same address: the insert skips on the
    unique constraint and the other one's subscriber is returned.

    Raises addresses.InvalidAddress when the address is not usable.
    """
    email = addresses.normalise(email)
    owner = {"account": account} if isinstance(account, models.Model) else {"account_id": account}
    while True:
        subscriber = Subscriber(
            **owner, email=email, domain=addresses.domain_of(email), name=name, fields=fields or {}
        )
        if _insert_unless_exists(subscriber):
            return subscriber, True
        existing = Subscriber.objects.filter(**owner).with_email(email).first()
        if existing is not None:
            return existing, False
        # The conflicting subscriber was deleted in the meantime: try the insert again.


def _insert_unless_exists(obj: models.Model) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING, on PostgreSQL and SQLite alike.

    Returns True and sets the primary key if the row went in, False if it clashed with
    a unique constraint. On PostgreSQL the insert waits for a concurrent transaction
    holding the same key and skips once that one commits, so no savepoint is needed.
    """
    meta = obj._meta
    connection = connections[router.db_for_write(type(obj))]
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(  # noqa: S608
        quote(meta.db_table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    returning = connection.features.can_return_columns_from_insert  # not SQLite < 3.35
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {quote(meta.pk.column)}" if returning else sql, values)
        if returning:
            row = cursor.fetchone()
            pk = row[0] if row else None
        else:
            pk = cursor.lastrowid if cursor.rowcount == 1 else None
    if pk is None:
        return False
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


def add(
    mailing_list_id: int,
    subscriber_id: int,
    *,
    status: str,
    source: str,
    confirmation_sent_at: object | None = None,
) -> Subscription | None:
    """Inserts a new subscription; returns it, or None if the subscriber is already on the list.

    Leaves the list's counts alone: pass what it returns to :func:`count_added`, as the
    last statement of the transaction.
    """
    now = timezone.now()
    subscription = Subscription(
        mailing_list_id=mailing_list_id,
        subscriber_id=subscriber_id,
        status=status,
        source=source,
        confirmation_sent_at=confirmation_sent_at,
        **_timestamps_for(status, now),
    )
    return subscription if _insert_unless_exists(subscription) else None


def count_added(added: Iterable[Subscription]) -> None:
    """Adds new subscriptions (from :func:`add`) to their lists' counts.

    Every signup to a list updates the list's row, and the row stays locked until
    COMMIT: concurrent signups to a list queue on it. Called as the last statement
    before COMMIT, the lock is held for the commit only. Lists go in id order, so two
    signups to the same lists cannot deadlock.
    """
    by_list: dict[int, dict[str, int]] = {}
    for subscription in added:
        counts = by_list.setdefault(subscription.mailing_list_id, {})
        name = COUNT_FIELD[subscription.status]
        counts[name] = counts.get(name, 0) + 1
    if not by_list:
        return
    table = MailingList._meta.db_table
    connection = connections[router.db_for_write(MailingList)]
    quote = connection.ops.quote_name
    # Plain SQL: this runs on every signup, and compiling the ORM's UPDATE cost more
    # than the statement itself. Column names come from COUNT_FIELD, never from input.
    with connection.cursor() as cursor:
        for list_id in sorted(by_list):
            counts = by_list[list_id]
            assignments = ", ".join(f"{quote(name)} = {quote(name)} + %s" for name in counts)
            cursor.execute(
                f"UPDATE {quote(table)} SET {assignments} WHERE id = %s",  # noqa: S608
                [*counts.values(), list_id],
            )


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
    campaign_id: int | None = None,
) -> bool:
    """Moves a subscription to a new status; returns False if it already had it.

    The update is conditional on the old status, so two concurrent changes
    record one history row each and never count twice. An unsubscribe is also
    logged in the statistics, for ``campaign_id`` when the campaign's link did it.
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
            subscription, new_status, source=source, actor=actor, note=note, reason=reason,
            campaign_id=campaign_id,
        )  # fmt: skip
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
    if new_status == Status.UNSUBSCRIBED:
        _log_unsubscribe(subscription, source, reason, campaign_id)
    return True


def _log_unsubscribe(
    subscription: Subscription, source: str, reason: str, campaign_id: int | None
) -> None:
    from stats import events

    subscriber = subscription.subscriber
    details = {"source": source, **({"reason": reason[:200]} if reason else {})}
    events.record(
        events.Kind.UNSUBSCRIBED,
        account_id=subscriber.account_id,
        campaign_id=campaign_id or None,
        mailing_list_id=subscription.mailing_list_id,
        subscriber_id=subscriber.pk,
        recipient_domain=subscriber.domain,
        details=details,
    )


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


def expire_pending(now: datetime | None = None) -> int:
    """Removes subscriptions left pending past PENDING_EXPIRY_DAYS; returns how many.

    Every pending subscription expires alike, whatever made it pending (a form, an
    import, the panel, the API): what counts is the time it became pending, or its
    last confirmation mail if that is later (a pending address signing up again after
    the cool-down gets a fresh link, which must live its full time). Its confirmation
    link has expired by then, so it could never be confirmed.

    A subscriber left with no subscription is deleted too when the expired one came
    from a form and no consent was ever recorded for them: an address someone typed
    into a form and never confirmed is not kept. What the owner brought (an import, the
    panel, the API) stays in the account. Each row is re-read under a lock, so a
    confirmation or a fresh mail arriving meanwhile wins.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PENDING_EXPIRY_DAYS)
    # GREATEST of the two: NULL on SQLite when one is NULL, hence the COALESCE inside.
    since = Greatest(Coalesce("confirmation_sent_at", "status_changed_at"), "status_changed_at")
    stale = Subscription.objects.filter(status=Status.PENDING).alias(since=since)
    stale = stale.filter(since__lt=cutoff)
    removed = 0
    for subscription_id in stale.values_list("id", flat=True).iterator(chunk_size=500):
        with transaction.atomic():
            subscription = stale.select_for_update().filter(id=subscription_id).first()
            if subscription is None:
                continue
            remove(subscription)
            removed += 1
            if subscription.source == Subscription.Source.FORM:
                _forget_unconfirmed(subscription.subscriber_id)
    return removed


def _forget_unconfirmed(subscriber_id: int) -> None:
    """Deletes a subscriber with no subscription left and no consent ever recorded."""
    if Subscription.objects.filter(subscriber_id=subscriber_id).exists():
        return
    Subscriber.objects.filter(id=subscriber_id, consent={}).delete()
