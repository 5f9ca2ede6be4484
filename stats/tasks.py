"""Celery entry points of the stats app: ids in, one call into the domain."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.db import DatabaseError, OperationalError

from stats import reports

logger = logging.getLogger(__name__)


class FailureReportPartTask(DjangoTask):
    """Fails the report when its part fails for good, so its page stops waiting."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: object
    ) -> None:
        # Celery calls this once, after the last retry (never between retries).
        part_id = args[0] if args else kwargs.get("part_id")
        try:
            reports.fail_part(part_id, exc)
        except DatabaseError:
            # The database is the likely cause; the deadline check ends the report later.
            logger.exception("could not record the failure of report part %s", part_id)


# A part counts once however often it runs (its done flag is a conditional update), so a
# redelivered message after a lost worker is harmless; a dropped database connection is
# the one transient error worth another try.
@shared_task(
    base=FailureReportPartTask, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
    autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True,
)  # fmt: skip
def run_failure_report_part(part_id: int) -> None:
    reports.run_part(part_id)


# Routed to the "default" queue (settings.CELERY_TASK_ROUTES): the watchdog of the report
# parts must not wait behind them on the "stats" queue.
@shared_task(ignore_result=True)
def enforce_report_deadlines() -> None:
    reports.enforce_deadlines()


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
