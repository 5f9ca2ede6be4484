"""The monthly partitions of the event log on PostgreSQL: made ahead, listed, detached.

The log (``stats_trackingevent``) is partitioned by range of ``occurred_at``, one
partition per calendar month (UTC) named ``stats_trackingevent_y2026m12``, plus a DEFAULT
partition that catches anything outside them (a clock far off, a month nobody made). Beat
makes the months ahead every day; a detached month is a plain table again, ready to be
dumped and dropped while the rest of the log is untouched. On SQLite every function here
does nothing: the log is one plain table there.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from stats.models import TrackingEvent

logger = logging.getLogger(__name__)

TABLE = TrackingEvent._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_y(\d{{4}})m(\d{{2}})$")


@dataclass(frozen=True)
class Partition:
    name: str
    bounds: str  # as PostgreSQL prints them: "FOR VALUES FROM (...) TO (...)" or "DEFAULT"
    rows: int  # the planner's estimate: counting a month exactly would read it all


def is_partitioned() -> bool:
    return connection.vendor == "postgresql"


def month_start(day: datetime.date, offset: int = 0) -> datetime.date:
    """The first day of the month ``offset`` months after the one holding ``day``."""
    index = day.year * 12 + day.month - 1 + offset
    return datetime.date(index // 12, index % 12 + 1, 1)


def partition_name(month: datetime.date) -> str:
    return f"{TABLE}_y{month:%Y}m{month:%m}"


def _bound(day: datetime.date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


def ensure_partitions(months_ahead: int = 3) -> list[str]:
    """Makes this month's partition and the next ``months_ahead``; returns those it made.

    Idempotent. Rows of a new month already caught by the DEFAULT partition are moved
    into it (PostgreSQL refuses to attach a range the default partition holds rows of).
    """
    if not is_partitioned():
        return []
    today = timezone.now().astimezone(datetime.UTC).date()
    existing = {p.name for p in list_partitions()}
    made = []
    for offset in range(months_ahead + 1):
        month = month_start(today, offset)
        if partition_name(month) not in existing:
            _create(month)
            made.append(partition_name(month))
    if made:
        logger.info("made event log partitions %s", ", ".join(made))
    return made


def _create(month: datetime.date) -> None:
    name, start, end = partition_name(month), _bound(month), _bound(month_start(month, 1))
    with transaction.atomic(), connection.cursor() as cursor:
        # Made as a table of its own first, filled from the default partition, then attached:
        # a plain CREATE ... PARTITION OF fails once the default holds rows of the month.
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 (names, not input)
            "WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        # DDL takes no bind parameters; the bounds are made from dates, never from input.
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')"
        )


def list_partitions() -> list[Partition]:
    """The partitions of the log, oldest month first and the default partition last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [TABLE],
        )
        rows = [Partition(name, bounds, max(count, 0)) for name, bounds, count in cursor]
    return sorted(rows, key=lambda p: (p.name == DEFAULT_PARTITION, p.name))


def detach_partition(month: datetime.date) -> str:
    """Detaches the month's partition from the log and returns its table name.

    The table stays in the database with its rows, no longer part of the log: dump it
    (``pg_dump -t <name>``) and drop it. Rollups already counted its events and keep
    them. Raises ValueError for a month that has no partition.
    """
    if not is_partitioned():
        raise ValueError("the event log is partitioned only on PostgreSQL")
    name = partition_name(month_start(month))
    if name not in {p.name for p in list_partitions()}:
        raise ValueError(f"no partition {name}")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
    logger.info("detached event log partition %s", name)
    return name


def parse_month(text: str) -> datetime.date:
    """``2026-12`` (or a partition name) as the first day of that month; raises ValueError."""
    match = _NAME.match(text) or re.match(r"^(\d{4})-(\d{2})$", text)
    if not match:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return datetime.date(int(match.group(1)), int(match.group(2)), 1)
