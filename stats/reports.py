"""The heavy failure report: which receiving domains, relays and addresses fail most.

It counts the log's ``failed`` and ``bounced`` events of a period, for one account or
(operators) for everything. A period of a busy month is tens of millions of rows, so a
request never counts them itself:

1. :func:`request_report` finds the period's id range of the log with a few primary-key
   probes (:func:`id_bounds`), cuts it into parts (one ``FailureReportPart`` row each) and
   queues one task per part on the ``stats`` queue, after commit.
2. Each part (:func:`run_part`) runs one aggregate query over its id range and stores the
   complete counts per key, so the merge is exact: the merged tables equal what a single
   query over the whole period answers (:func:`single_query_counts`, used by the tests and
   the benchmark to prove it).
3. A part marks itself done with a conditional update and bumps the report's counter in the
   same transaction; whichever part then sees every part done claims the merge with
   another conditional update (:func:`merge_if_complete`). No task waits for another, so
   adding workers makes the report faster, and a part that runs twice counts once.

A report always ends, done or failed, never running for ever:

- a part whose task fails for good (an error that is not transient, or its retries used
  up) fails the report at once with a reason its reader can act on (:func:`fail_part`,
  called by the task's failure hook);
- a part whose message never runs (lost by the broker, its worker killed by a hard time
  limit) is caught by :func:`enforce_deadline`: a report none of whose parts finished for
  ``STALL_AFTER`` gets its unfinished parts queued once more, and fails if that does not
  move it either. Beat runs the check every minute, and the progress poll of a report's
  page runs it for that report.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from lists.models import Subscriber
from sending.models import Relay
from stats.models import FailureReport, FailureReportPart, TrackingEvent

logger = logging.getLogger(__name__)

FAILURE_KINDS = (TrackingEvent.Kind.FAILED, TrackingEvent.Kind.BOUNCED)
DIMENSIONS = {"domains": "recipient_domain", "relays": "relay_id", "subscribers": "subscriber_id"}
TOP = 50
EVENTS_PER_PART = 500_000
MAX_PARTS = 256
# The log is appended in time order give or take the drain's delay, so the id range is
# searched for the period widened by this much; the parts still filter on occurred_at.
LATE_ARRIVAL = datetime.timedelta(hours=6)
# A part counts its events in seconds. A report with no part finished for this long, while
# no other report's part finished either (so its parts are not just waiting behind another
# report's on the queue), has lost its messages or its workers. Longer than a part may
# run before the soft time limit stops it, which fails the report through the task.
STALL_AFTER = datetime.timedelta(minutes=10)

Counts = dict[str, dict]  # dimension -> key -> [failed, bounced]


class ReportRefused(ValueError):
    """The request cannot be made (the period is empty or reversed); shown to the user."""


# --- Finding the id range of a period -------------------------------------------------------


def _first_at_or_after(moment: datetime.datetime, low: int, high: int) -> int:
    """The smallest id in [low, high + 1] from which events occur at or after ``moment``,
    by bisection: each probe is one primary-key lookup of the next existing id."""
    while low <= high:
        middle = (low + high) // 2
        probe = (
            TrackingEvent.objects.filter(id__gte=middle)
            .order_by("id")
            .values_list("id", "occurred_at")
            .first()
        )
        if probe is None or probe[1] >= moment:
            high = middle - 1
        else:
            low = probe[0] + 1
    return low


def id_bounds(start: datetime.datetime, end: datetime.datetime) -> tuple[int, int] | None:
    """(first id, last id) of the log that may hold events of [start, end), or None when
    the log has nothing there. About 2 × log2(rows) primary-key probes, no scan."""
    ends = TrackingEvent.objects.order_by("id").values_list("id", flat=True)
    lowest, highest = ends.first(), ends.reverse().first()
    if lowest is None:
        return None
    first = _first_at_or_after(start - LATE_ARRIVAL, lowest, highest)
    last = _first_at_or_after(end + LATE_ARRIVAL, lowest, highest) - 1
    return (first, last) if first <= last else None


def split(first: int, last: int, parts: int) -> list[tuple[int, int]]:
    """[first, last] cut into ``parts`` contiguous ranges of about equal width."""
    parts = max(1, min(parts, last - first + 1))
    width, extra = divmod(last - first + 1, parts)
    ranges, at = [], first
    for i in range(parts):
        size = width + (1 if i < extra else 0)
        ranges.append((at, at + size - 1))
        at += size
    return ranges


def default_parts(first: int, last: int) -> int:
    return max(1, min(MAX_PARTS, (last - first) // EVENTS_PER_PART + 1))


# --- Requesting and running ------------------------------------------------------------------


def request_report(
    *,
    account: object | None,
    requested_by: object,
    start: datetime.datetime,
    end: datetime.datetime,
    parts: int | None = None,
) -> FailureReport:
    """Creates the report and its parts and queues one task per part after commit.

    ``account`` None means every account (the caller checks the user is an operator).
    Raises ReportRefused for a reversed period. A period without events is done at once.
    """
    if end <= start:
        raise ReportRefused("The period must end after it starts.")
    from stats import tasks

    bounds = id_bounds(start, end)
    ranges = split(*bounds, parts or default_parts(*bounds)) if bounds else []
    with transaction.atomic():
        report = FailureReport.objects.create(
            account=account,
            requested_by=requested_by,
            period_start=start,
            period_end=end,
            parts_total=len(ranges),
        )
        created = FailureReportPart.objects.bulk_create(
            FailureReportPart(report=report, first_event_id=a, last_event_id=b) for a, b in ranges
        )
        for part in created:
            tasks.run_failure_report_part.delay_on_commit(part.id)
    if not ranges:
        merge_if_complete(report.id)
        report.refresh_from_db()
    logger.info("failure report %s: %s parts over ids %s", report.id, len(ranges), bounds)
    return report


def period_events(report: FailureReport) -> QuerySet[TrackingEvent]:
    """The report's failure events over the whole period (no id bounds)."""
    events = TrackingEvent.objects.filter(
        kind__in=FAILURE_KINDS,
        occurred_at__gte=report.period_start,
        occurred_at__lt=report.period_end,
    )
    if report.account_id is not None:
        events = events.filter(account_id=report.account_id)
    return events


def _slice(first_id: int, last_id: int) -> Q:
    """The time slice of an id range, widened by LATE_ARRIVAL at both ends.

    It adds nothing to the answer (the same ordering assumption found the range), but it
    lets PostgreSQL read the range through the (kind, occurred_at) index and only the
    months it touches, instead of filtering whole partitions on id.
    """
    ids = TrackingEvent.objects.filter(id__gte=first_id, id__lte=last_id).values_list(
        "occurred_at", flat=True
    )
    earliest, latest = ids.order_by("id").first(), ids.order_by("-id").first()
    if earliest is None:
        return Q(pk__in=[])
    early, late = min(earliest, latest), max(earliest, latest)
    return Q(occurred_at__gte=early - LATE_ARRIVAL, occurred_at__lte=late + LATE_ARRIVAL)


def count_part(report: FailureReport, first_id: int, last_id: int) -> Counts:
    """Complete counts per key of every dimension over one id range: one aggregate query
    (after two primary-key probes for its time slice)."""
    rows = (
        period_events(report)
        .filter(_slice(first_id, last_id), id__gte=first_id, id__lte=last_id)
        .values_list("kind", *DIMENSIONS.values())
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: Counts = {name: {} for name in DIMENSIONS}
    for kind, domain, relay, subscriber, n in rows:
        column = 0 if kind == TrackingEvent.Kind.FAILED else 1
        for name, key in zip(DIMENSIONS, (domain, relay, subscriber), strict=True):
            _add(counts[name], key, column, n)
    return counts


def _add(table: dict, key: object, column: int, n: int) -> None:
    pair = table.setdefault(key, [0, 0])
    pair[column] += n


def run_part(part_id: int) -> bool:
    """Counts one part, marks it done, and merges the report if it was the last one.

    Returns False when the part was already done (a task delivered twice): nothing is
    counted twice, but the merge is still attempted in case the first run died before it.
    """
    part = FailureReportPart.objects.select_related("report").filter(id=part_id).first()
    if part is None or part.report.status != FailureReport.Status.RUNNING:
        # A re-queued copy of a part of a report that already ended: nothing to add.
        return False
    counted = False
    if not part.done:
        counts = count_part(part.report, part.first_event_id, part.last_event_id)
        counted = _mark_done(part, counts)
    merge_if_complete(part.report_id)
    return counted


def _mark_done(part: FailureReportPart, counts: Counts) -> bool:
    # JSON objects have string keys only; the pairs keep ints and None as they are.
    stored = {name: [[key, *pair] for key, pair in table.items()] for name, table in counts.items()}
    with transaction.atomic():
        marked = FailureReportPart.objects.filter(id=part.id, done=False).update(
            done=True, result=stored
        )
        if marked:
            FailureReport.objects.filter(id=part.report_id).update(
                parts_done=F("parts_done") + 1, progressed_at=timezone.now()
            )
    return bool(marked)


def merge_if_complete(report_id: int) -> bool:
    """Merges the parts into the report's result if every part is done and nobody merged
    yet; returns True for the caller that did the merge."""
    with transaction.atomic():
        claimed = FailureReport.objects.filter(
            id=report_id,
            status=FailureReport.Status.RUNNING,
            parts_done=F("parts_total"),
            finished_at__isnull=True,
        ).update(finished_at=timezone.now())
        if not claimed:
            return False
        report = FailureReport.objects.get(id=report_id)
        parts = FailureReportPart.objects.filter(report_id=report_id).values_list(
            "result", flat=True
        )
        report.result = result_from(report, merge_counts(parts))
        report.status = FailureReport.Status.DONE
        report.save(update_fields=["result", "status"])
    logger.info("failure report %s merged from %s parts", report_id, report.parts_total)
    return True


# --- Ending a report that cannot finish --------------------------------------------------


def fail(report_id: int, error: str) -> bool:
    """Ends a running report as failed with ``error``, shown on its page.

    Returns True for the caller that ended it; a report already done or failed is left
    as it is (a conditional update, so two callers never both end it).
    """
    ended = FailureReport.objects.filter(id=report_id, status=FailureReport.Status.RUNNING).update(
        status=FailureReport.Status.FAILED, error=error, finished_at=timezone.now()
    )
    if ended:
        logger.warning("failure report %s failed: %s", report_id, error)
    return bool(ended)


def fail_part(part_id: int, exc: BaseException) -> bool:
    """Fails the report of a part whose task failed for good; returns whether it did.

    The reason names the error's class and first line (a lock timeout, a permission,
    a time limit), not its traceback, which is in the worker's log.
    """
    part = FailureReportPart.objects.select_related("report").filter(id=part_id).first()
    if part is None:
        return False
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    cause = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return fail(
        part.report_id,
        f"One of its {part.report.parts_total} parts could not be counted ({cause}). "
        "Run it again; if it fails again, an operator will find the cause in the workers' log.",
    )


def _last_sign_of_life(report: FailureReport) -> datetime.datetime:
    moments = (report.created_at, report.progressed_at, report.requeued_at)
    return max(moment for moment in moments if moment is not None)


def is_overdue(report: FailureReport, now: datetime.datetime | None = None) -> bool:
    """Whether a running report has not moved for STALL_AFTER (no query)."""
    now = now or timezone.now()
    running = report.status == FailureReport.Status.RUNNING
    return running and _last_sign_of_life(report) < now - STALL_AFTER


def enforce_deadline(report_id: int, now: datetime.datetime | None = None) -> str:
    """Re-queues the unfinished parts of a stalled report once, and fails it the next time.

    Stalled: running, nothing of it moved for STALL_AFTER (no part finished, not made or
    re-queued since), and no part of any other report finished meanwhile either: while
    the ``stats`` workers finish other parts, this report's may only be waiting behind
    them. Returns "requeued", "failed" or "" (nothing to do). The parts are queued after
    commit; a part that runs twice counts once.
    """
    from stats import tasks

    now = now or timezone.now()
    cutoff = now - STALL_AFTER
    report = FailureReport.objects.filter(id=report_id).first()
    if report is None or not is_overdue(report, now):
        return ""
    if FailureReport.objects.filter(progressed_at__gte=cutoff).exclude(id=report_id).exists():
        return ""
    missing = report.parts_total - report.parts_done
    if report.requeued_at is None:
        with transaction.atomic():
            claimed = FailureReport.objects.filter(
                id=report_id, status=FailureReport.Status.RUNNING, requeued_at__isnull=True
            ).update(requeued_at=now)
            if not claimed:
                return ""
            parts = FailureReportPart.objects.filter(report_id=report_id).order_by("id")
            again = list(parts.filter(done=False).values_list("id", flat=True))
            # Every part counted but no merge (its worker died in between): running any
            # part again merges.
            for part_id in again or parts.values_list("id", flat=True)[:1]:
                tasks.run_failure_report_part.delay_on_commit(part_id)
        logger.warning("failure report %s stalled: %s parts queued again", report_id, missing)
        return "requeued"
    minutes = int(STALL_AFTER.total_seconds() // 60)
    error = (
        f"{missing} of its {report.parts_total} parts did not finish, even queued a second "
        f"time: no worker counted anything for {minutes} minutes. Check that a worker "
        "consumes the stats queue, then run it again."
    )
    return "failed" if fail(report_id, error) else ""


def enforce_deadlines(now: datetime.datetime | None = None) -> dict[str, int]:
    """enforce_deadline for every running report; returns how many were re-queued / failed."""
    done: dict[str, int] = {"requeued": 0, "failed": 0}
    running = FailureReport.objects.filter(status=FailureReport.Status.RUNNING)
    for report_id in running.values_list("id", flat=True):
        outcome = enforce_deadline(report_id, now)
        if outcome:
            done[outcome] += 1
    return done


def run_again(report: FailureReport, requested_by: object) -> FailureReport:
    """A new report over the same period and scope as an ended one (see request_report).

    Raises ReportRefused while the report is still running.
    """
    if report.status == FailureReport.Status.RUNNING:
        raise ReportRefused("This report is still being counted.")
    return request_report(
        account=report.account,
        requested_by=requested_by,
        start=report.period_start,
        end=report.period_end,
    )


def merge_counts(part_results: Iterable[dict]) -> Counts:
    """The sum of the parts' complete counts, per dimension and key."""
    merged: Counts = {name: {} for name in DIMENSIONS}
    for result in part_results:
        for name in DIMENSIONS:
            for key, failed, bounced in result.get(name, []):
                _add(merged[name], key, 0, failed)
                _add(merged[name], key, 1, bounced)
    return merged


# --- The answer --------------------------------------------------------------------------------


def _order(item: tuple[object, list[int]]) -> tuple:
    key, (failed, bounced) = item
    # Most failures first; ties by key so every way of computing gives the same order.
    return (-(failed + bounced), key is None, "" if key is None else key)


def top(table: dict, limit: int = TOP) -> list[tuple[object, int, int]]:
    ranked = sorted(table.items(), key=_order)[:limit]
    return [(key, failed, bounced) for key, (failed, bounced) in ranked]


def tables(counts: Counts, limit: int = TOP) -> dict:
    """The comparable core of a result: totals, distinct keys and the top rows."""
    domains = counts["domains"].values()
    return {
        "failed": sum(f for f, _ in domains),
        "bounced": sum(b for _, b in domains),
        "distinct": {name: len(table) for name, table in counts.items()},
        "top": {name: [list(row) for row in top(table, limit)] for name, table in counts.items()},
    }


def result_from(report: FailureReport, counts: Counts) -> dict:
    """What FailureReport.result holds: the tables plus a label per key."""
    result = tables(counts)
    relay_ids = [key for key, _, _ in result["top"]["relays"] if key is not None]
    subscriber_ids = [key for key, _, _ in result["top"]["subscribers"] if key is not None]
    relays = dict(Relay.objects.filter(id__in=relay_ids).values_list("id", "name"))
    subscribers = Subscriber.objects.filter(id__in=subscriber_ids)
    if report.account_id is not None:
        subscribers = subscribers.filter(account_id=report.account_id)
    emails = dict(subscribers.values_list("id", "email"))
    result["labels"] = {
        "relays": {str(k): relays.get(k, f"relay {k}") for k in relay_ids},
        "subscribers": {str(k): emails.get(k, f"subscriber {k} (deleted)") for k in subscriber_ids},
    }
    return result


def single_query_counts(report: FailureReport) -> Counts:
    """The same counts from one grouped query per dimension over the whole period."""
    counts: Counts = {}
    events = period_events(report)
    for name, column in DIMENSIONS.items():
        rows = events.values_list(column, "kind").annotate(n=Count("id")).order_by()
        table: dict = {}
        for key, kind, n in rows:
            _add(table, key, 0 if kind == TrackingEvent.Kind.FAILED else 1, n)
        counts[name] = table
    return counts


def matches_single_query(report: FailureReport) -> bool:
    """True when the merged result equals the single-query answer (totals, distinct keys,
    and every top row with its counts, in order)."""
    expected = tables(single_query_counts(report))
    got = {key: report.result.get(key) for key in expected}
    return got == expected


@dataclass(frozen=True)
class Row:
    key: object
    label: str
    failed: int
    bounced: int

    @property
    def total(self) -> int:
        return self.failed + self.bounced


def rows(report: FailureReport, dimension: str) -> list[Row]:
    """A result table ready to show (and export)."""
    labels = report.result.get("labels", {}).get(dimension, {})
    found = []
    for key, failed, bounced in report.result.get("top", {}).get(dimension, []):
        if dimension == "domains":
            label = key or "(no domain)"
        else:
            label = "(none)" if key is None else labels.get(str(key), str(key))
        found.append(Row(key, label, failed, bounced))
    return found


def visible_reports(user: object) -> QuerySet[FailureReport]:
    """The reports a user may see: their account's, and every-account ones for operators."""
    mine = Q(account=user)
    if getattr(user, "is_staff", False):
        mine |= Q(account__isnull=True)
    return FailureReport.objects.filter(mine)
