"""CSV export of a list (optionally filtered) or of a segment, streamed.

Memory stays constant at millions of rows: rows come from one ``values_list`` query
read with ``.iterator(chunk_size=...)`` (a server-side cursor on Postgres), each row
is written as it arrives, and the text leaves in chunks of about 64 KB. No row causes
another query: the custom field values come in the same row (the ``fields`` JSON).

Columns: email, name, [status for a list], subscribed_at, confirmed_at, one column per
custom field of the account (by position), created_at. Times are ISO 8601 in the time
zone given (the reader's); booleans are ``yes`` / ``no``. Every cell goes through
:func:`mailpanel.lib.csvsafe.neutralise`, so no cell can start a spreadsheet formula.
The text starts with a UTF-8 byte order mark so Excel reads accented names right (the
importer accepts the mark).

Export jobs: the panel's Export buttons do not stream inside the request (a million
rows outlast the web server's timeout). :func:`start_list_export` and
:func:`start_segment_export` save an ExportJob and queue ``lists.tasks.run_export``;
:func:`run_job` writes the same text as the streamed export to a file in media
storage, reporting rows written as it goes, and the panel polls that progress and
offers the file for download when it is done.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.files import File
from django.db import DatabaseError, transaction
from django.db.models import Min, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.text import slugify

from lists.filters import filter_subscriptions
from lists.models import CustomField, ExportJob, MailingList, Segment, Subscription
from lists.segments import InvalidSegment, subscribers_in
from mailpanel.lib.csvsafe import neutralise_row

logger = logging.getLogger(__name__)

CHUNK_SIZE = 2000
FLUSH_AT = 64 * 1024
BOM = "\ufeff"
# How often a running export job records its progress (and so its heartbeat).
PROGRESS_EVERY_SECONDS = 2.0


def _account_fields(account_id: int) -> list[str]:
    return list(
        CustomField.objects.filter(account_id=account_id)
        .order_by("position", "id")
        .values_list("key", flat=True)
    )


def _time(value: datetime.datetime | None, tz: datetime.tzinfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else ""


def _field_cell(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def header(keys: list[str], *, with_status: bool) -> list[str]:
    status = ["status"] if with_status else []
    return ["email", "name", *status, "subscribed_at", "confirmed_at", *keys, "created_at"]


def list_rows(
    mailing_list: MailingList, subscriptions: QuerySet[Subscription], tz: datetime.tzinfo
) -> Iterator[list[object]]:
    """The header, then one row per subscription of the queryset (a list's, maybe filtered)."""
    keys = _account_fields(mailing_list.owner_id)
    yield header(keys, with_status=True)
    rows = subscriptions.values_list(
        "subscriber__email",
        "subscriber__name",
        "status",
        "created_at",
        "confirmed_at",
        "subscriber__fields",
        "subscriber__created_at",
    )
    for email, name, status, subscribed, confirmed, values, created in rows.iterator(
        chunk_size=CHUNK_SIZE
    ):
        values = values or {}
        yield [
            email,
            name,
            status,
            _time(subscribed, tz),
            _time(confirmed, tz),
            *(_field_cell(values.get(key)) for key in keys),
            _time(created, tz),
        ]


def segment_rows(segment: Segment, tz: datetime.tzinfo) -> Iterator[list[object]]:
    """The header, then one row per subscriber in the segment (raises InvalidSegment).

    subscribed_at and confirmed_at are the subscriber's earliest on any list.
    """
    keys = _account_fields(segment.account_id)
    yield header(keys, with_status=False)
    # Correlated subqueries, each an index lookup on subscription.subscriber_id, so rows
    # stream in id order instead of waiting for a GROUP BY over the whole segment.
    mine = Subscription.objects.filter(subscriber=OuterRef("pk")).order_by().values("subscriber")
    rows = (
        subscribers_in(segment)
        .order_by("id")
        .annotate(
            first_subscribed=Subquery(mine.annotate(at=Min("created_at")).values("at")),
            first_confirmed=Subquery(mine.annotate(at=Min("confirmed_at")).values("at")),
        )
        .values_list("email", "name", "first_subscribed", "first_confirmed", "fields", "created_at")
    )
    for email, name, subscribed, confirmed, values, created in rows.iterator(chunk_size=CHUNK_SIZE):
        values = values or {}
        yield [
            email,
            name,
            _time(subscribed, tz),
            _time(confirmed, tz),
            *(_field_cell(values.get(key)) for key in keys),
            _time(created, tz),
        ]


def stream_csv(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text for the rows, neutralised, in chunks of about 64 KB."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(neutralise_row(row))
        if buffer.tell() >= FLUSH_AT:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def filename(name: str, today: datetime.date) -> str:
    """An ASCII file name for Content-Disposition: ``<slug>-<date>.csv``."""
    return f"{slugify(name)[:60] or 'export'}-{today.isoformat()}.csv"


# --- Export jobs --------------------------------------------------------------------------


def start_list_export(
    mailing_list: MailingList, user: object, filter_params: dict[str, str]
) -> ExportJob:
    """Saves an export of the list narrowed by the list page's filter; queues it after commit."""
    job = ExportJob(
        account_id=mailing_list.owner_id,
        created_by=user,
        mailing_list=mailing_list,
        filter=dict(filter_params),
        filename=filename(mailing_list.name, timezone.localdate()),
    )
    return _queue(job)


def start_segment_export(segment: Segment, user: object) -> ExportJob:
    """Saves an export of the segment; queues it after commit."""
    job = ExportJob(
        account_id=segment.account_id,
        created_by=user,
        segment=segment,
        filename=filename(segment.name, timezone.localdate()),
    )
    return _queue(job)


def _queue(job: ExportJob) -> ExportJob:
    from lists import tasks

    with transaction.atomic():
        job.save()
        transaction.on_commit(lambda: tasks.run_export.delay(job.id))
    return job


def _rows_of(job: ExportJob) -> Iterator[list[object]]:
    """The rows the streamed export of the same list filter or segment gives."""
    user = job.created_by
    tz = user.tzinfo() if user is not None else datetime.UTC
    if job.segment_id is not None:
        return segment_rows(job.segment, tz)
    mailing_list = job.mailing_list
    return list_rows(mailing_list, filter_subscriptions(mailing_list, job.filter), tz)


def run_job(job_id: int) -> ExportJob | None:
    """Claims a queued export and writes its file; returns the job, None if not queued.

    The file is written to a temporary file first and saved to media storage when
    complete, so storage never holds half an export. A segment that no longer
    compiles, or a database or disk error, marks the job failed with the reason.
    """
    now = timezone.now()
    claimed = ExportJob.objects.filter(id=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    job = ExportJob.objects.select_related("mailing_list", "segment", "created_by").get(id=job_id)
    try:
        written = _write_file(job)
    except (InvalidSegment, DatabaseError, OSError) as exc:
        logger.warning("export %s failed: %s", job.id, exc)
        ExportJob.objects.filter(id=job.id).update(
            status=ExportJob.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    else:
        ExportJob.objects.filter(id=job.id).update(
            status=ExportJob.Status.DONE,
            rows_written=written,
            file=job.file.name,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )
    job.refresh_from_db()
    return job


def _write_file(job: ExportJob) -> int:
    """Streams the rows into a temporary file, then into storage; returns the rows written."""
    counted = [0]

    def counting(rows: Iterator[list[object]]) -> Iterator[list[object]]:
        for number, row in enumerate(rows):  # the header is number 0
            counted[0] = number
            yield row

    reported = time.monotonic()
    with tempfile.TemporaryFile() as out:
        for text in stream_csv(counting(_rows_of(job))):
            out.write(text.encode("utf-8"))
            if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
                reported = time.monotonic()
                ExportJob.objects.filter(id=job.id).update(
                    rows_written=counted[0], heartbeat_at=timezone.now()
                )
        out.seek(0)
        job.file.save(job.filename, File(out, name=job.filename), save=False)
    return counted[0]
