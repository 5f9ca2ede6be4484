"""Deliveries still deferred when their retry deadline passes: they fail, and are
recorded as a relay's 5xx refusal is (sending.delivery), so they count in the campaign's
statistics and show on its bounce pages, with the relay's last 4xx reply as the reason."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from bounces import intake
from campaigns.models import Campaign
from lists.models import MailingList
from sending import delivery
from sending.models import Delivery
from stats.events import Event, domain_of, record_many

logger = logging.getLogger(__name__)

DStatus = Delivery.Status
# Deliveries failed per dispatcher tick, at most: the next tick takes the rest.
EXPIRE_AT_ONCE = 2000


def expire_deferred(deadline: datetime) -> int:
    """Deferred deliveries created before ``deadline`` fail, and are recorded as a 5xx
    refusal is: a "failed" event in the log (statistics) and, with the relay's last 4xx
    reply as the reason, a bounce event the bounce rules classify (a soft or sender-side
    failure, as the reply says). Returns how many failed (at most EXPIRE_AT_ONCE a call)."""
    rows = list(
        Delivery.objects.filter(status=DStatus.DEFERRED, created_at__lt=deadline)
        .select_related("subscriber")
        .only(*delivery.DELIVERY_FIELDS, "smtp_code", "smtp_response")
        .order_by("id")[:EXPIRE_AT_ONCE]
    )
    if not rows:
        return 0
    now = timezone.now()
    with transaction.atomic():
        # Conditional: a worker may have taken a row for one last try meanwhile.
        moved = _move_deferred([d.id for d in rows], DStatus.FAILED)
        failed = [d for d in rows if d.id in moved]
        for row in failed:
            row.status, row.next_attempt_at = DStatus.FAILED, None
        record_many(_failed_events(failed, now))
    intake.record_smtp_failures(failed)
    logger.info("%s deferred deliveries passed the retry deadline and failed", len(failed))
    return len(failed)


def _move_deferred(ids: list[int], status: str) -> set[int]:
    """Moves those of the rows still DEFERRED to ``status``; returns their ids."""
    sql = f"UPDATE {Delivery._meta.db_table} SET status = %s, next_attempt_at = NULL "  # noqa: S608
    if connection.vendor == "postgresql":
        sql += "WHERE id = ANY(%s) AND status = %s RETURNING id"
        params = [status, ids, DStatus.DEFERRED]
    else:
        sql += f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND status = %s RETURNING id"
        params = [status, *ids, DStatus.DEFERRED]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _failed_events(failed: list[Delivery], now: datetime) -> list[Event]:
    """The "failed" events of deliveries from any campaigns, each with its list."""
    by_campaign: dict[int, list[Delivery]] = {}
    for row in failed:
        by_campaign.setdefault(row.campaign_id, []).append(row)
    accounts = dict(Campaign.objects.filter(id__in=by_campaign).values_list("id", "account_id"))
    events = []
    for campaign_id, deliveries in by_campaign.items():
        list_ids = list(
            MailingList.objects.filter(campaigns=campaign_id)
            .order_by("id")
            .values_list("id", flat=True)
        )
        lists_of, _ = delivery.recipient_lists([d.subscriber_id for d in deliveries], list_ids)
        first_list = list_ids[0] if list_ids else None
        events += [
            Event(
                kind="failed",
                occurred_at=now,
                account_id=accounts.get(campaign_id),
                campaign_id=campaign_id,
                mailing_list_id=lists_of.get(d.subscriber_id, first_list),
                subscriber_id=d.subscriber_id,
                delivery_id=d.id,
                relay_id=d.relay_id,
                recipient_domain=domain_of(d.subscriber.email),
            )
            for d in deliveries
        ]
    return events
