"""Celery entry points of the stats app: ids in, one call into the domain."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from stats import reports


# A part counts once however often it runs (its done flag is a conditional update), so a
# redelivered message after a lost worker is harmless; a dropped database connection is
# the one transient error worth another try.
@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True,
    autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True,
)  # fmt: skip
def run_failure_report_part(part_id: int) -> None:
    reports.run_part(part_id)


# Tracking. Each import is local so the modules of the reports and of tracking load apart.
# The drain is safe to overlap or repeat (a Redis lock, and chunk keys in the database), so
# beat may fire it every 2 seconds; Redis being away is logged, not retried.
@shared_task(ignore_result=True)
def drain_tracking_buffer() -> int:
    from stats import drain

    return drain.drain()


@shared_task(ignore_result=True)
def ensure_partitions(months_ahead: int = 3) -> None:
    from stats import drain, partitions

    partitions.ensure_partitions(months_ahead)
    drain.prune_drained()


@shared_task(ignore_result=True)
def roll_up_lists(day: str | None = None) -> None:
    """Rolls up the given day (ISO date), or today and yesterday (late changes land)."""
    import datetime

    from django.utils import timezone

    from stats import rollups

    if day:
        rollups.roll_up_lists(datetime.date.fromisoformat(day))
        return
    today = timezone.localdate()
    for each in (today - datetime.timedelta(days=1), today):
        rollups.roll_up_lists(each)
