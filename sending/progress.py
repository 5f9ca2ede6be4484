"""Live progress of a campaign's send, for the campaign page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from campaigns.models import Campaign
from sending.models import Delivery, SendBatch

RATE_WINDOW = timedelta(seconds=60)
FINAL = (
    Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.UNKNOWN, Delivery.Status.SKIPPED,
)  # fmt: skip


@dataclass
class Progress:
    total: int
    sent: int
    failed: int
    unknown: int
    deferred: int
    skipped: int
    remaining: int
    per_minute: int
    finish_at: datetime | None
    per_relay: list[tuple[str, int]] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return int(100 * (self.total - self.remaining) / self.total) if self.total else 0


def of(campaign: Campaign) -> Progress:
    """Counts from the delivery rows (one grouped query per figure, all on indexes)."""
    deliveries = Delivery.objects.filter(campaign=campaign)
    counts = dict(deliveries.values_list("status").annotate(n=Count("id")).order_by())
    planned = SendBatch.objects.filter(campaign=campaign, size__gt=0).aggregate(n=Sum("size"))["n"]
    done = sum(counts.get(s, 0) for s in FINAL)
    total = max(planned or 0, done + counts.get(Delivery.Status.DEFERRED, 0))
    now = timezone.now()
    per_minute = deliveries.filter(sent_at__gte=now - RATE_WINDOW).count()
    remaining = max(0, total - done)
    finish_at = None
    if per_minute and remaining and campaign.status == Campaign.Status.SENDING:
        finish_at = now + timedelta(minutes=remaining / per_minute)
    per_relay = list(
        deliveries.filter(status=Delivery.Status.SENT, relay__isnull=False)
        .values_list("relay__name")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    status = Delivery.Status
    return Progress(
        total=total, sent=counts.get(status.SENT, 0), failed=counts.get(status.FAILED, 0),
        unknown=counts.get(status.UNKNOWN, 0), deferred=counts.get(status.DEFERRED, 0),
        skipped=counts.get(status.SKIPPED, 0), remaining=remaining, per_minute=per_minute,
        finish_at=finish_at, per_relay=per_relay,
    )  # fmt: skip
