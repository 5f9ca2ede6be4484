"""Writing the event log: the one way other apps (and the tracking drain) record events.

Callers hand over plain ``Event`` values; ``record_many`` writes them in one statement
(COPY on PostgreSQL, one multi-row INSERT on SQLite) and updates the rollups with one
statement per rollup table, in the same transaction. Nothing here runs a query per event:
the send pipeline records a whole chunk of deliveries at once.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from stats.models import TrackingEvent

Kind = TrackingEvent.Kind
TABLE = TrackingEvent._meta.db_table
COLUMNS = (
    "occurred_at", "kind", "account_id", "campaign_id", "mailing_list_id", "subscriber_id",
    "delivery_id", "relay_id", "recipient_domain", "link_index", "machine", "details",
)  # fmt: skip


@dataclass(slots=True)
class Event:
    """One row of the log, as plain values (ids, not model objects)."""

    kind: str
    occurred_at: datetime.datetime
    account_id: int | None = None
    campaign_id: int | None = None
    mailing_list_id: int | None = None
    subscriber_id: int | None = None
    delivery_id: int | None = None
    relay_id: int | None = None
    recipient_domain: str = ""
    link_index: int | None = None
    machine: bool = False
    details: dict = field(default_factory=dict)


def record(kind: str, *, occurred_at: datetime.datetime | None = None, **values: object) -> Event:
    """Records one event (see ``Event`` for the values) and updates the rollups.

    Returns the event as written. Raises ValueError for an unknown kind.
    """
    event = Event(kind=kind, occurred_at=occurred_at or timezone.now(), **values)  # type: ignore[arg-type]
    record_many([event])
    return event


def record_many(events: Sequence[Event]) -> int:
    """Writes the events and counts them in the rollups, in one transaction.

    Opens and clicks also update each delivery's engagement (first and total), from
    which unique counts are derived. Returns how many events were written; raises
    ValueError for an unknown kind (before anything is written).
    """
    from stats import rollups

    if not events:
        return 0
    unknown = {e.kind for e in events} - set(Kind.values)
    if unknown:
        raise ValueError(f"unknown event kinds: {sorted(unknown)}")
    with transaction.atomic():
        _insert(events)
        rollups.count(events)
    return len(events)


def _insert(events: Sequence[Event]) -> None:
    if connection.vendor == "postgresql":
        _copy(events)
        return
    # One multi-row INSERT (bulk_create would split it by Django's 999-parameter guess);
    # a chunk of 2,000 events stays under SQLite's 32,766 parameters.
    adapt = connection.ops.adapt_datetimefield_value
    params: list[object] = []
    for e in events:
        params.extend(
            (
                adapt(e.occurred_at), e.kind, e.account_id, e.campaign_id, e.mailing_list_id,
                e.subscriber_id, e.delivery_id, e.relay_id, e.recipient_domain, e.link_index,
                e.machine, json.dumps(e.details, separators=(",", ":")),
            )
        )  # fmt: skip
    row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "  # noqa: S608 (names, not input)
            + ", ".join([row] * len(events)),
            params,
        )


def _copy(events: Sequence[Event]) -> None:
    # COPY is several times cheaper than a multi-row INSERT for the server and the client.
    statement = f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN"
    dumps = json.dumps
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for e in events:
            copy.write_row(
                (
                    e.occurred_at, e.kind, e.account_id, e.campaign_id, e.mailing_list_id,
                    e.subscriber_id, e.delivery_id, e.relay_id, e.recipient_domain,
                    e.link_index, e.machine, dumps(e.details, separators=(",", ":")),
                )
            )  # fmt: skip


def domain_of(address: str) -> str:
    """The receiving domain of an address, lowercased (empty when there is none)."""
    return address.rpartition("@")[2].lower()[:253]
