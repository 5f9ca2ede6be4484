"""Bulk actions over a selection of subscribers or over a whole filter result.

A small selection (up to INLINE_LIMIT ids) runs in the request through :func:`apply`;
anything larger, and every "all matching this filter" selection, becomes a BulkJob that
a worker runs (:func:`run_job`, from the task ``lists.tasks.run_bulk_job``).

Both paths share :func:`apply_chunk`, which is set-based: a handful of queries per chunk
of ids whatever the chunk's size (one UPDATE for the statuses, one bulk_create for the
history rows), never a query per subscriber. The per-status counts of the affected lists
are recounted once at the end (lists.subscriptions.recount).

Every chunk first intersects its ids with the source list's subscriptions, so ids posted
by a browser can never reach a subscriber outside the list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from lists import addresses, blocklist, subscriptions
from lists.filters import apply_filter, filter_subscriptions, parse_filter
from lists.models import (
    BlocklistEntry,
    BulkJob,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionChange,
)

logger = logging.getLogger(__name__)

Action = BulkJob.Action
Status = Subscription.Status
INLINE_LIMIT = 1000
CHUNK_SIZE = 1000
NEEDS_TARGET = {Action.ADD_TO_LIST, Action.REMOVE_FROM_LIST}
# These reach beyond the list: deleting a subscriber removes them from every list of
# the account, and a blocklist entry is the account's. Only the owner may run them.
ACCOUNT_WIDE = {Action.DELETE, Action.BLOCKLIST}
# Only subscribers who want mail on the source list are added to another list.
COPIED_STATUSES = (Status.PENDING, Status.CONFIRMED)


class BulkError(ValueError):
    """A bulk action that cannot run as asked; the message is shown to the user."""


def target_lists_for(user: object, mailing_list: MailingList) -> QuerySet[MailingList]:
    """Lists the user may add the list's subscribers to or remove them from.

    Same account only: a subscriber belongs to the list owner's account, and must not
    appear on a list of another account the user happens to manage.
    """
    return (
        MailingList.objects.editable_by(user)
        .filter(owner_id=mailing_list.owner_id)
        .exclude(id=mailing_list.id)
    )


def check_target(action: str, mailing_list: MailingList, target: MailingList | None) -> None:
    if action in NEEDS_TARGET and target is None:
        raise BulkError("Choose the other list.")
    if target is not None and target.id == mailing_list.id:
        raise BulkError("Choose a list other than this one.")


# --- The set-based work on one chunk ----------------------------------------------------------


def apply_chunk(
    action: str,
    mailing_list: MailingList,
    subscriber_ids: Sequence[int],
    *,
    target: MailingList | None = None,
    actor: object | None = None,
) -> tuple[int, set[int]]:
    """Applies the action to the chunk; returns (rows changed, ids of lists to recount)."""
    with transaction.atomic():
        on_list = list(
            Subscription.objects.select_for_update()
            .filter(mailing_list=mailing_list, subscriber_id__in=list(subscriber_ids))
            .values_list("id", "subscriber_id", "status")
        )
        if not on_list:
            return 0, set()
        handler = HANDLERS[action]
        return handler(mailing_list, on_list, target=target, actor=actor)


Rows = list[tuple[int, int, str]]


def _unsubscribe(mailing_list: MailingList, rows: Rows, **kwargs: object) -> tuple[int, set[int]]:
    now = timezone.now()
    changing = [(sid, status) for sid, _, status in rows if status != Status.UNSUBSCRIBED]
    if not changing:
        return 0, set()
    Subscription.objects.filter(id__in=[sid for sid, _ in changing]).update(
        status=Status.UNSUBSCRIBED, status_changed_at=now, unsubscribed_at=now
    )
    actor = kwargs.get("actor")
    SubscriptionChange.objects.bulk_create(
        SubscriptionChange(
            subscription_id=sid,
            old_status=old,
            new_status=Status.UNSUBSCRIBED,
            source=Subscription.Source.PANEL,
            note="bulk action",
            actor=actor if getattr(actor, "pk", None) else None,
        )
        for sid, old in changing
    )
    return len(changing), {mailing_list.id}


def _delete_subscriptions(subscriptions: QuerySet[Subscription]) -> None:
    # History first, so the subscriptions' delete needs no per-object cascade work.
    SubscriptionChange.objects.filter(subscription__in=subscriptions.values("id")).delete()
    subscriptions.delete()


def _delete(mailing_list: MailingList, rows: Rows, **kwargs: object) -> tuple[int, set[int]]:
    ids = [subscriber_id for _, subscriber_id, _ in rows]
    everywhere = Subscription.objects.filter(subscriber_id__in=ids)
    affected = set(everywhere.values_list("mailing_list_id", flat=True).distinct())
    _delete_subscriptions(everywhere)
    Subscriber.objects.filter(id__in=ids, account_id=mailing_list.owner_id).delete()
    return len(ids), affected | {mailing_list.id}


def _add_to_list(mailing_list: MailingList, rows: Rows, **kwargs: object) -> tuple[int, set[int]]:
    target: MailingList = kwargs["target"]  # type: ignore[assignment]
    wanted = {
        subscriber_id: status for _, subscriber_id, status in rows if status in COPIED_STATUSES
    }
    blocked = set(
        blocklist.annotate_email_key(Subscriber.objects.filter(id__in=list(wanted)))
        .filter(blocklist.blocked_subscribers_q())
        .values_list("id", flat=True)
    )
    now = timezone.now()
    Subscription.objects.bulk_create(
        [
            Subscription(
                mailing_list=target,
                subscriber_id=subscriber_id,
                status=status,
                source=Subscription.Source.PANEL,
                confirmed_at=now if status == Status.CONFIRMED else None,
            )
            for subscriber_id, status in wanted.items()
            if subscriber_id not in blocked
        ],
        ignore_conflicts=True,  # already on the target list: left as it is
    )
    return len(wanted) - len(blocked), {target.id}


def _remove_from_list(
    mailing_list: MailingList, rows: Rows, **kwargs: object
) -> tuple[int, set[int]]:
    target: MailingList = kwargs["target"]  # type: ignore[assignment]
    ids = [subscriber_id for _, subscriber_id, _ in rows]
    _delete_subscriptions(Subscription.objects.filter(mailing_list=target, subscriber_id__in=ids))
    return len(ids), {target.id}


def _blocklist(mailing_list: MailingList, rows: Rows, **kwargs: object) -> tuple[int, set[int]]:
    ids = [subscriber_id for _, subscriber_id, _ in rows]
    actor = kwargs.get("actor")
    entries = []
    for email in Subscriber.objects.filter(id__in=ids).values_list("email", flat=True):
        try:
            kind, value = blocklist.parse_entry(email)
        except addresses.InvalidAddress:
            continue
        entries.append(
            BlocklistEntry(
                account_id=mailing_list.owner_id,
                kind=kind,
                value=value,
                reason="bulk action on a list",
                created_by=actor if getattr(actor, "pk", None) else None,
            )
        )
    # The account's blocklist, as lists.blocklist.add_entries would write it, in one insert.
    BlocklistEntry.objects.bulk_create(entries, ignore_conflicts=True)
    return len(entries), set()


HANDLERS = {
    Action.UNSUBSCRIBE: _unsubscribe,
    Action.DELETE: _delete,
    Action.ADD_TO_LIST: _add_to_list,
    Action.REMOVE_FROM_LIST: _remove_from_list,
    Action.BLOCKLIST: _blocklist,
}


def delete_list(mailing_list: MailingList) -> None:
    """Deletes a list and its subscriptions; the subscribers stay in the account.

    Set-based: the history and the subscriptions go in one DELETE each, instead of
    Django's cascade loading every subscription of a big list into memory.
    """
    subscriptions = Subscription.objects.filter(mailing_list=mailing_list)
    with transaction.atomic():
        SubscriptionChange.objects.filter(subscription__in=subscriptions.values("id")).delete()
        # Nothing else points at a subscription, so a raw DELETE is safe (and a foreign
        # key added later would make it fail loudly rather than leave orphans).
        subscriptions._raw_delete(subscriptions.db)
        mailing_list.delete()


# --- Inline runs and jobs -----------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK_SIZE):
        yield ids[start : start + CHUNK_SIZE]


def apply(
    action: str,
    mailing_list: MailingList,
    subscriber_ids: Iterable[int],
    *,
    target: MailingList | None = None,
    actor: object | None = None,
) -> int:
    """Runs the action now on the ids (those not on the list are ignored); returns how
    many rows it changed. Raises BulkError for a missing or wrong target list."""
    check_target(action, mailing_list, target)
    ids = sorted(set(subscriber_ids))
    changed, affected = 0, set()
    for chunk in _chunks(ids):
        n, lists = apply_chunk(action, mailing_list, chunk, target=target, actor=actor)
        changed += n
        affected |= lists
    subscriptions.recount(affected)
    return changed


def create_job(
    action: str,
    mailing_list: MailingList,
    *,
    actor: object,
    target: MailingList | None = None,
    subscriber_ids: Iterable[int] | None = None,
    filter_params: dict[str, str] | None = None,
) -> BulkJob:
    """Saves a BulkJob (explicit ids, or the filter) and queues it after commit.

    Raises BulkError for a missing or wrong target list.
    """
    from lists import tasks  # the task module imports this one

    check_target(action, mailing_list, target)
    ids = sorted(set(subscriber_ids or []))
    job = BulkJob.objects.create(
        account_id=mailing_list.owner_id,
        created_by=actor,
        mailing_list=mailing_list,
        target_list=target,
        action=action,
        subscriber_ids=ids,
        filter={} if ids else dict(filter_params or {}),
        total=len(ids),
    )
    tasks.run_bulk_job.delay_on_commit(job.id)
    return job


def _filter_chunks(job: BulkJob) -> Iterator[list[int]]:
    """Subscriber ids of the job's filter, in keyset chunks (rows that leave the filter
    while the job runs, e.g. once unsubscribed, are not met again)."""
    flt = parse_filter(job.mailing_list, job.filter)
    last = 0
    while True:
        queryset = apply_filter(job.mailing_list, flt, id_above=last).order_by("subscriber_id")
        chunk = list(queryset.values_list("subscriber_id", flat=True)[:CHUNK_SIZE])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def run_job(job_id: int) -> None:
    """Runs a queued BulkJob to the end, recording progress after each chunk.

    A job already claimed (a duplicate task message) is left alone. Every action is
    idempotent, so a job re-run after a crash repeats no harm. Errors mark it failed
    and are raised again for the worker's log.
    """
    claimed = BulkJob.objects.filter(id=job_id, status=BulkJob.Status.QUEUED).update(
        status=BulkJob.Status.RUNNING
    )
    if not claimed:
        return
    job = BulkJob.objects.select_related("mailing_list", "target_list", "created_by").get(id=job_id)
    try:
        _run(job)
    except Exception as exc:
        BulkJob.objects.filter(id=job.id).update(
            status=BulkJob.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        logger.exception("bulk job %s failed", job.id)
        raise


def _run(job: BulkJob) -> None:
    if job.subscriber_ids:
        chunks: Iterable[Sequence[int]] = _chunks(job.subscriber_ids)
    else:
        total = filter_subscriptions(job.mailing_list, job.filter).count()
        BulkJob.objects.filter(id=job.id).update(total=total)
        chunks = _filter_chunks(job)
    affected: set[int] = set()
    done = 0
    for chunk in chunks:
        _, lists = apply_chunk(
            job.action, job.mailing_list, chunk, target=job.target_list, actor=job.created_by
        )
        affected |= lists
        done += len(chunk)
        BulkJob.objects.filter(id=job.id).update(done=done)
    subscriptions.recount(affected | {job.mailing_list_id})
    BulkJob.objects.filter(id=job.id).update(
        status=BulkJob.Status.DONE, done=done, finished_at=timezone.now()
    )
