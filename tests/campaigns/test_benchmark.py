"""bench_merge reports the issue's numbers: both merge medians and the 100 KB freeze."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_bench_merge_reports_the_10kb_and_100kb_merges_and_the_large_freeze() -> None:
    out = io.StringIO()
    call_command("bench_merge", "--recipients", "200", stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["recipients"] == 200
    assert result["median_us_per_recipient"] > 0
    assert result["median_us_per_recipient_100kb"] > result["median_us_per_recipient"]
    # freeze_seconds is the 100 KB campaign with 50 links and a 5 MB attachment.
    assert result["freeze_html_bytes_large"] >= 100_000
    assert result["freeze_links_large"] == 50
    assert result["html_bytes_100kb"] >= 100_000
    assert 0 < result["freeze_seconds"] < 5


def test_bench_merge_runs_where_senders_must_be_verified(settings) -> None:  # noqa: ANN001
    # Production settings (DATABASE_URL set, DEBUG off) freeze only verified senders.
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = True
    out = io.StringIO()
    call_command("bench_merge", "--recipients", "20", stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert result["recipients"] == 20 and result["median_us_per_recipient"] > 0
