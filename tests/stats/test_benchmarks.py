"""The three statistics benchmarks at tiny sizes: each runs end to end on the real services,
prints one JSON object as its last line, and its numbers agree with each other."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Campaign
from stats.models import CampaignStats, FailureReport, TrackingEvent


def run(command: str, **options: object) -> dict:
    out = io.StringIO()
    call_command(command, stdout=out, stderr=io.StringIO(), **options)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_bench_tracking_finds_every_accepted_hit_once_in_the_log() -> None:
    result = run("bench_tracking", seconds=1, recipients=20, connections=2, client="python")
    assert {"hits_per_second", "p99_ms", "accepted", "in_log", "lost", "duplicated"} <= set(result)
    assert result["accepted"] > 0 and result["errors"] == 0
    assert result["in_log"] == result["distinct_in_log"] == result["accepted"]
    assert (result["lost"], result["duplicated"], result["kept_unanswered"]) == (0, 0, 0)
    assert result["count_exact"] and result["buffer"] == "redis"
    assert not TrackingEvent.objects.exists()  # it cleans up after itself


@pytest.mark.usefixtures("no_redis")
def test_bench_tracking_refuses_to_run_without_the_redis_buffer() -> None:
    with pytest.raises(CommandError, match="REDIS_URL is not set"):
        call_command("bench_tracking", seconds=1, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bench_stats_page_shows_rollups_built_from_its_events() -> None:
    result = run("bench_stats_page", deliveries=40, events=400, runs=2)
    assert {"median_ms", "max_ms", "deliveries", "events", "rollup_seconds"} <= set(result)
    assert (result["deliveries"], result["events"], result["runs"]) == (40, 400, 2)
    assert result["min_ms"] <= result["median_ms"] <= result["max_ms"]
    assert result["rollups_match_log"] is True
    assert not TrackingEvent.objects.exists() and not Campaign.objects.exists()
    assert not CampaignStats.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bench_failure_report_merges_to_the_single_query_answer() -> None:
    result = run("bench_failure_report", events=3000, parts=3, workers=1, timeout=120)
    assert {"seconds", "parts", "matches_single_query", "status"} <= set(result)
    assert (result["status"], result["parts"], result["events"]) == ("done", 3, 3000)
    assert result["matches_single_query"] is True
    assert 0 < result["failures_counted"] < 3000
    assert not TrackingEvent.objects.exists() and not FailureReport.objects.exists()
