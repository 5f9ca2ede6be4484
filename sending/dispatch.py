"""The dispatcher: due campaigns become batch plans, batches are released and
re-planned, finished campaigns are closed. One beat tick runs :func:`tick`.

Two beats (or a beat restarted mid-tick) never start one campaign twice: due
campaigns are claimed with ``FOR UPDATE SKIP LOCKED`` and a conditional status move.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.utils import timezone

from campaigns import audience, scheduling
from campaigns.models import Campaign
from sending import expiry
from sending.models import Delivery, SendBatch
from stats import events as stats_events

logger = logging.getLogger(__name__)

Status = SendBatch.Status
Kind = SendBatch.Kind
OPEN = (Status.PLANNED, Status.QUEUED, Status.SENDING)
# A planned batch overdue by more than this was held back (a pause, a dispatcher that
# was down), not merely reached a tick late: its campaign's pace starts again from now.
RELEASE_SLACK = timedelta(seconds=30)


def _enqueue(batch_ids: list[int]) -> None:
    from sending.tasks import send_batch

    for batch_id in batch_ids:
        send_batch.delay(batch_id)


def _enqueue_after_commit(batch_ids: list[int]) -> None:
    if batch_ids:
        transaction.on_commit(lambda: _enqueue(batch_ids))


def tick(now: datetime | None = None) -> None:
    """Everything the beat does every few seconds, each step in its own transaction."""
    now = now or timezone.now()
    start_due(now)
    release(now)
    requeue_expired(now)
    retry_deferred(now)
    close_cancelled()
    finish_complete()


def _intervals(campaign: Campaign, batches: int, batch_size: int) -> float:
    """Seconds between two batches' release for gradual sending (0: all at once)."""
    if campaign.max_per_hour:
        return batch_size / campaign.max_per_hour * 3600
    if campaign.spread_over_hours and batches > 1:
        return campaign.spread_over_hours * 3600 / batches
    return 0.0


def plan(campaign: Campaign, now: datetime) -> list[int]:
    """Splits the audience into non-overlapping id ranges; returns the queued batch ids.

    The audience is read once, in id order: subscribers who join later are not in it.
    """
    batch_size = settings.SEND_BATCH_SIZE
    if campaign.max_per_hour:
        # Small batches keep a per-hour limit smooth instead of a burst each hour.
        batch_size = max(1, min(batch_size, campaign.max_per_hour // 60 or 1))
    ranges: list[tuple[int, int, int]] = []
    first = last = None
    count = 0
    ids = audience.recipients(campaign).order_by("id").values_list("id", flat=True)
    for subscriber_id in ids.iterator(chunk_size=20000):
        if first is None:
            first = subscriber_id
        last = subscriber_id
        count += 1
        if count == batch_size:
            ranges.append((first, last, count))
            first, count = None, 0
    if first is not None:
        ranges.append((first, last, count))
    interval = _intervals(campaign, len(ranges), batch_size)
    batches = [
        SendBatch(
            campaign=campaign,
            first_subscriber_id=low,
            last_subscriber_id=high,
            size=size,
            release_at=now + timedelta(seconds=interval * i),
            status=Status.QUEUED if i == 0 or not interval else Status.PLANNED,
            enqueued_at=now if i == 0 or not interval else None,
        )
        for i, (low, high, size) in enumerate(ranges)
    ]
    SendBatch.objects.bulk_create(batches, batch_size=1000)
    return list(
        SendBatch.objects.filter(campaign=campaign, status=Status.QUEUED).values_list(
            "id", flat=True
        )
    )


def _tell_owner_late(campaign: Campaign) -> None:
    owner = campaign.account
    if not owner.email:
        return
    send_mail(
        f"Campaign “{campaign.name}” was not sent on time",
        (
            f"Your campaign “{campaign.name}” was due at {campaign.send_at:%Y-%m-%d %H:%M} UTC, "
            "but mailpanel could not send it within its grace period. It is paused: open it "
            "in the panel and resume it to send it now, unschedule it to change it, or "
            "cancel it. You will not be told again."
        ),
        None,
        [owner.email],
        fail_silently=True,
    )


def start_due(now: datetime) -> None:
    grace = timedelta(hours=settings.SEND_GRACE_HOURS)
    with transaction.atomic():
        due = scheduling.due_campaigns(now).select_for_update(skip_locked=True)[:20]
        for campaign in due:
            if now - campaign.send_at > grace:
                # Sent this late it would surprise readers: the owner decides.
                scheduling.pause(campaign)
                transaction.on_commit(lambda c=campaign: _tell_owner_late(c))
                logger.warning("campaign %s missed its grace period; paused", campaign.pk)
                continue
            scheduling.start(campaign)
            _enqueue_after_commit(plan(campaign, now))


def release(now: datetime) -> None:
    """Gradual sending: planned batches whose time has come join the queue.

    A campaign with several batches overdue by more than RELEASE_SLACK (it was paused,
    or the dispatcher was down) does not get them all at once: the first goes now and
    the rest of its plan is spaced again from now at the campaign's pace.
    """
    with transaction.atomic():
        due = list(
            SendBatch.objects.select_for_update(skip_locked=True)
            .filter(
                status=Status.PLANNED, release_at__lte=now, campaign__status=Campaign.Status.SENDING
            )
            .order_by("release_at", "id")
            .values_list("id", "campaign_id", "release_at")[:500]
        )
        by_campaign: dict[int, list[tuple[int, datetime]]] = {}
        for batch_id, campaign_id, release_at in due:
            by_campaign.setdefault(campaign_id, []).append((batch_id, release_at))
        ids = []
        for campaign_id, batches in by_campaign.items():
            if len(batches) > 1 and now - batches[0][1] > RELEASE_SLACK:
                ids.append(batches[0][0])
                _respace(campaign_id, batches[0][0], now)
            else:
                ids += [batch_id for batch_id, _ in batches]
        SendBatch.objects.filter(id__in=ids).update(status=Status.QUEUED, enqueued_at=now)
        _enqueue_after_commit(ids)


def _respace(campaign_id: int, released: int, now: datetime) -> None:
    """The campaign's planned batches (but ``released``, which goes now) follow each
    other from now at the interval its plan used."""
    campaign = Campaign.objects.get(id=campaign_id)
    plan_shape = SendBatch.objects.filter(campaign_id=campaign_id, kind=Kind.AUDIENCE).aggregate(
        batches=Count("id"), size=Max("size")
    )
    interval = timedelta(
        seconds=_intervals(campaign, plan_shape["batches"], plan_shape["size"] or 1)
    )
    waiting = list(
        SendBatch.objects.filter(campaign_id=campaign_id, status=Status.PLANNED)
        .exclude(id=released)
        .order_by("release_at", "id")
        .only("id", "release_at")
    )
    for position, batch in enumerate(waiting, start=1):
        batch.release_at = now + interval * position
    SendBatch.objects.bulk_update(waiting, ["release_at"], batch_size=1000)
    logger.info(
        "campaign %s: %s planned batches were overdue; spaced again from now",
        campaign_id,
        len(waiting) + 1,
    )


def requeue_expired(now: datetime) -> None:
    """Batches whose worker died (lease ran out), parked by a pause, or whose task
    message was lost are queued again. Messages maybe handed to SMTP become unknown."""
    lease = timedelta(seconds=settings.SEND_BATCH_LEASE_SECONDS)
    with transaction.atomic():
        expired = list(
            SendBatch.objects.select_for_update(skip_locked=True)
            .filter(status=Status.SENDING, lease_until__lt=now)
            .values_list("id", flat=True)[:500]
        )
        if expired:
            _mark_unknown(expired, now)
            SendBatch.objects.filter(id__in=expired).update(
                status=Status.QUEUED, enqueued_at=now, node="", lease_until=None
            )
            logger.warning("re-planned %s batches whose lease ran out", len(expired))
        waiting = list(
            SendBatch.objects.select_for_update(skip_locked=True)
            .filter(status=Status.QUEUED, campaign__status=Campaign.Status.SENDING)
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - lease))
            .values_list("id", flat=True)[:500]
        )
        SendBatch.objects.filter(id__in=waiting).update(enqueued_at=now)
        _enqueue_after_commit(expired + waiting)


def _mark_unknown(batch_ids: list[int], now: datetime) -> None:
    """Deliveries of dead batches that were handed to SMTP become UNKNOWN, and are
    counted so in the event log (one read, one update and one COPY for them all)."""
    lost = list(
        Delivery.objects.filter(batch_id__in=batch_ids, status=Delivery.Status.SENDING).values_list(
            "id", "campaign_id", "subscriber_id", "campaign__account_id", "subscriber__domain"
        )
    )
    Delivery.objects.filter(id__in=[row[0] for row in lost], status=Delivery.Status.SENDING).update(
        status=Delivery.Status.UNKNOWN,
        smtp_response="the worker stopped after handing the message to SMTP",
    )
    stats_events.record_many(
        [
            stats_events.Event(
                kind="unknown",
                occurred_at=now,
                delivery_id=delivery_id,
                campaign_id=campaign_id,
                subscriber_id=subscriber_id,
                account_id=account_id,
                recipient_domain=domain,
            )  # fmt: skip
            for delivery_id, campaign_id, subscriber_id, account_id, domain in lost
        ]
    )


def retry_deferred(now: datetime) -> None:
    """Deferred deliveries due for another try get a retry batch per campaign, which
    sends exactly them; past the retry deadline they fail (sending.expiry)."""
    expiry.expire_deferred(now - timedelta(hours=settings.SEND_RETRY_DEADLINE_HOURS))
    with transaction.atomic():
        due = Delivery.objects.filter(
            status=Delivery.Status.DEFERRED,
            next_attempt_at__lte=now,
            campaign__status=Campaign.Status.SENDING,
        )
        spans = due.values("campaign_id").annotate(
            low=Min("subscriber_id"), high=Max("subscriber_id")
        )
        created = []
        for span in spans:
            # Size 0: the audience's size is the sum of the audience batches' sizes.
            batch = SendBatch.objects.create(
                campaign_id=span["campaign_id"], kind=Kind.RETRY, first_subscriber_id=span["low"],
                last_subscriber_id=span["high"], size=0, release_at=now,
                status=Status.QUEUED, enqueued_at=now,
            )  # fmt: skip
            due.filter(campaign_id=span["campaign_id"]).update(next_attempt_at=None, batch=batch)
            created.append(batch.id)
        _enqueue_after_commit(created)


def close_cancelled() -> None:
    open_batches = SendBatch.objects.filter(
        status__in=OPEN, campaign__status=Campaign.Status.CANCELLED
    )
    open_batches.exclude(status=Status.SENDING).update(
        status=Status.DONE, finished_at=timezone.now()
    )


def finish_complete() -> None:
    """A sending campaign with no open batch and nothing deferred is sent."""
    open_batch = SendBatch.objects.filter(campaign=OuterRef("pk"), status__in=OPEN)
    deferred = Delivery.objects.filter(campaign=OuterRef("pk"), status=Delivery.Status.DEFERRED)
    done = Campaign.objects.filter(status=Campaign.Status.SENDING).filter(
        ~Exists(open_batch), ~Exists(deferred)
    )
    for campaign in done:
        try:
            scheduling.finish(campaign)
        except scheduling.TransitionError:
            continue
