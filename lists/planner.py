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
