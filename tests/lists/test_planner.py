"""The import's closing ANALYZE: the next campaign is planned on the rows just written."""

from __future__ import annotations

import pytest
from django.db import connection

from lists import planner

pytestmark = [pytest.mark.django_db(transaction=True)]


def analyze_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_a_bulk_write_re_samples_both_tables_and_a_small_one_does_not() -> None:
    before = analyze_count("lists_subscription"), analyze_count("lists_subscriber")
    assert planner.refresh_after_bulk_write(planner.BULK_ROWS - 1) is False
    assert planner.refresh_after_bulk_write(planner.BULK_ROWS) is True
    # The statistics collector reports with a short delay.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
    after = analyze_count("lists_subscription"), analyze_count("lists_subscriber")
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1


def test_nothing_to_do_off_postgres() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("covered by the Postgres test")
    assert planner.refresh_after_bulk_write(10**6) is False


@pytest.mark.postgres
def test_deferred_search_index_upkeep_still_finds_new_rows_and_merges_them_later(owner) -> None:  # noqa: ANN001
    # An import leaves its rows in the trigram indexes' pending lists: a substring search
    # must find them at once, and the upkeep task merges them into the indexes afterwards.
    from django.db import transaction

    from lists.models import Subscriber

    with transaction.atomic(), connection.cursor() as cursor:
        planner.defer_search_index_upkeep(cursor)
        Subscriber.objects.bulk_create(
            Subscriber(account=owner, email=f"reader{i}@joann-mail.example", name=f"Joann {i}")
            for i in range(300)
        )
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "SELECT count(*) FROM lists_subscriber WHERE lower(email) LIKE %s", ["%joann-mail%"]
        )
        assert cursor.fetchone()[0] == 300
        cursor.execute("RESET enable_seqscan")
    assert planner.clean_search_indexes() > 0
    assert planner.clean_search_indexes() == 0
