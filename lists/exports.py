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
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Min, OuterRef, QuerySet, Subquery
from django.utils.text import slugify

from lists.models import CustomField, MailingList, Segment, Subscription
from lists.segments import subscribers_in
from mailpanel.lib.csvsafe import neutralise_row

CHUNK_SIZE = 2000
FLUSH_AT = 64 * 1024
BOM = "\ufeff"


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
