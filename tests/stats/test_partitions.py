"""The event log's monthly partitions on PostgreSQL: made ahead, idempotent, detachable."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from stats import events, partitions
from stats.models import TrackingEvent

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def this_month() -> datetime.date:
    return partitions.month_start(timezone.now().date())


def test_the_migration_made_the_months_around_now_and_a_default() -> None:
    names = [p.name for p in partitions.list_partitions()]
    assert partitions.partition_name(this_month()) in names
    assert partitions.partition_name(partitions.month_start(this_month(), 3)) in names
    assert names[-1] == partitions.DEFAULT_PARTITION


def test_ensure_makes_the_months_ahead_once() -> None:
    made = partitions.ensure_partitions(months_ahead=8)
    wanted = partitions.partition_name(partitions.month_start(this_month(), 8))
    assert wanted in made
    assert partitions.ensure_partitions(months_ahead=8) == []
    assert wanted in [p.name for p in partitions.list_partitions()]


def test_a_new_month_takes_its_rows_from_the_default_partition() -> None:
    later = partitions.month_start(this_month(), 10)
    at = datetime.datetime(later.year, later.month, 15, 12, tzinfo=datetime.UTC)
    events.record("opened", occurred_at=at, recipient_domain="example.org")
    partitions.ensure_partitions(months_ahead=10)
    assert TrackingEvent.objects.get(occurred_at=at).recipient_domain == "example.org"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.partition_name(later)}")  # noqa: S608
        assert cursor.fetchone()[0] == 1
        cursor.execute(f"SELECT count(*) FROM {partitions.DEFAULT_PARTITION}")  # noqa: S608
        assert cursor.fetchone()[0] == 0


def test_a_detached_month_leaves_the_log_and_stays_as_a_table() -> None:
    earlier = partitions.month_start(this_month(), -1)
    at = datetime.datetime(earlier.year, earlier.month, 2, tzinfo=datetime.UTC)
    events.record("sent", occurred_at=at)
    call_command("manage_partitions", "detach", f"{earlier:%Y-%m}")
    assert partitions.partition_name(earlier) not in [p.name for p in partitions.list_partitions()]
    assert not TrackingEvent.objects.filter(occurred_at=at).exists()
    with pytest.raises(ValueError, match="no partition"):
        partitions.detach_partition(earlier)


def test_ids_keep_coming_from_the_sequence() -> None:
    first = TrackingEvent.objects.create(occurred_at=timezone.now(), kind="sent")
    second = TrackingEvent.objects.create(occurred_at=timezone.now(), kind="sent")
    assert first.id and second.id == first.id + 1
