"""Diagnostics of any length classify in linear time: the text is cut to parse.MAX_DIAGNOSTIC
first, on every path, and no pattern of the tables rescans a long run from each position."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bounces import classify, parse, rules
from bounces.models import BounceEvent
from bounces.parse import RecipientResult
from tests.bounces.test_webhooks import basic_auth, secrets  # noqa: F401 (the fixture)

PAYLOADS = Path(__file__).parent / "webhooks"
MEGABYTE = 1_000_000
# Runs that made patterns rescan from every position: local-part characters without an "@"
# (ADDRESS_RE), blank lines (REPLY_RE's line start), digits and dots (STATUS_RE), words.
RUNS = ["x", "a.", "\t\n", "1.", "user ", "mailbox ", " "]


def long_text(unit: str, size: int) -> str:
    return "550 " + unit * (size // len(unit))


@pytest.mark.parametrize("unit", RUNS)
def test_a_megabyte_of_diagnostic_classifies_well_under_a_second(unit: str) -> None:
    result = RecipientResult(action="failed", status="5.0.0", diagnostic=long_text(unit, MEGABYTE))
    started = time.perf_counter()
    classify.classify(result)
    classify.classify_text(result.diagnostic)
    assert time.perf_counter() - started < 0.5


def test_the_cut_keeps_the_head_that_decides() -> None:
    text = "550 5.1.1 <ann@reader.example>: user unknown " + "x" * MEGABYTE
    assert classify.classify(RecipientResult(action="failed", status="5.1.1", diagnostic=text)) == (
        "hard"
    )


PATTERNS = [
    *(pattern for pattern, _ in rules.TEXT_RULES),
    rules.DEAD_DOMAIN_RE,
    rules.MAILBOX_STATE_RE,
    classify.AT_RCPT_RE,
    classify.AT_MAIL_RE,
    classify.AFTER_DATA_RE,
    classify.PIPELINED_RCPT_RE,
    classify.LOCAL_VERDICT_RE,
    classify.DEAD_AT_DATA_RE,
    classify.ROUTINE_DELAY_RE,
    classify.SENDER_WORD_RE,
    parse.ADDRESS_RE,
    parse.STATUS_RE,
    parse.REPLY_RE,
    parse.NOT_DELIVERED_RE,
    parse.ORIGINAL_FIELD_RE,
    parse.TRANSCRIPT_START_RE,
]


@pytest.mark.parametrize("unit", RUNS)
def test_no_pattern_is_super_linear_on_long_text(unit: str) -> None:
    # 50 KB: a linear pattern takes milliseconds, the quadratic ones took seconds.
    text = long_text(unit, 50_000)
    for pattern in PATTERNS:
        started = time.perf_counter()
        pattern.sub("", text) if pattern is parse.ADDRESS_RE else pattern.search(text)
        assert time.perf_counter() - started < 0.25, pattern.pattern[:60]


@pytest.mark.django_db
def test_a_webhook_event_with_a_megabyte_of_reason_is_classified_fast(client) -> None:  # noqa: ANN001
    batch = json.loads((PAYLOADS / "sendgrid_batch.json").read_text())[:1]
    batch[0]["reason"] = long_text("a.", MEGABYTE)
    started = time.perf_counter()
    response = client.post(
        "/webhooks/sendgrid/tracking/", json.dumps(batch), content_type="application/json",
        **basic_auth(),
    )  # fmt: skip
    assert response.status_code == 200 and time.perf_counter() - started < 1.0
    assert len(BounceEvent.objects.get().diagnostic) == parse.MAX_DIAGNOSTIC
