"""Planner statistics after bulk writes.

Postgres plans the audience query of a campaign (sending/, campaigns/audience.py) from
its table statistics. Right after a large import those still describe the tables as
they were: a list that grew from nothing by a million rows is estimated at one row, and
the chosen nested loop then takes seconds per batch instead of milliseconds. Autovacuum
catches up on its own schedule, which may be after the campaign has started; an ANALYZE
(sampled, a fraction of a second) at the end of the import closes that window.
"""

from __future__ import annotations

from django.db import connection

from lists.models import Subscriber, Subscription

# Below this many new or changed rows, the existing statistics are close enough.
BULK_ROWS = 10_000


def refresh_after_bulk_write(rows: int) -> bool:
    """Re-samples the subscriber tables if ``rows`` is a bulk write; says whether it did."""
    if rows < BULK_ROWS or connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        for model in (Subscriber, Subscription):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return True


# The substring-search indexes (lists/migrations/0007): GIN over trigrams. Maintaining them
# row by row costs a bulk import about as much as writing the rows themselves.
SEARCH_INDEXES = ("subscriber_email_trgm", "subscriber_name_trgm")
# In kB, the largest value PostgreSQL takes.
UNLIMITED_PENDING_LIST = 2147483647


def defer_search_index_upkeep(cursor: object) -> None:
    """For the current transaction, new rows enter the GIN indexes' pending lists.

    Searches still see them (a pending list is read with the index); the indexes take them
    in later, in one pass, by :func:`clean_search_indexes` or autovacuum. PostgreSQL only.
    """
    cursor.execute(f"SET LOCAL gin_pending_list_limit = {UNLIMITED_PENDING_LIST}")


def clean_search_indexes() -> int:
    """Merges the search indexes' pending lists into the indexes; returns the pages merged."""
    if connection.vendor != "postgresql":
        return 0
    merged = 0
    with connection.cursor() as cursor:
        for name in SEARCH_INDEXES:
            cursor.execute(
                "SELECT gin_clean_pending_list(to_regclass(%s)) WHERE to_regclass(%s) IS NOT NULL",
                [name, name],
            )
            row = cursor.fetchone()
            merged += int(row[0] or 0) if row else 0
    return merged
