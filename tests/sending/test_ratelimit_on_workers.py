"""A relay's rate in the pipeline: what arrives at the relay from two worker processes
that share its token bucket (test_ratelimit.py holds the bucket to it on its own)."""

from __future__ import annotations

from collections import Counter

import pytest
from aiosmtpd.controller import Controller

from campaigns import scheduling
from sending.models import Delivery, Relay
from tests.sending.test_control import TimedHandler
from tests.sending.test_pipeline import make_campaign
from tests.sending.test_workers import drive, make_audience
from tests.services import WorkerProcess, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180), pytest.mark.redis]

RATE = 50.0


def test_two_worker_processes_together_send_at_the_relays_rate(
    owner, settings, tmp_path, celery_worker_process
) -> None:  # noqa: ANN001
    # A full bucket (one second's worth) goes at once; the steady part after it is what
    # is measured. Small batches make both workers take turns on the one campaign.
    settings.SEND_BATCH_SIZE = 20
    count = int(RATE) * 5
    handler, port = TimedHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    Relay.objects.create(name="limited", host="127.0.0.1", port=port, security="none",
                         rate_per_second=RATE)  # fmt: skip
    second = WorkerProcess(tmp_path / "second.log", name="second")
    try:
        second.wait_ready()
        campaign = make_campaign(owner, [make_audience(owner, count)])
        scheduling.schedule(campaign)
        drive(campaign, 90, celery_worker_process)
    finally:
        second.stop()
        controller.stop()

    arrivals = sorted(handler.received)
    assert len(arrivals) == count
    start, end = arrivals[0][0] + 1.0, arrivals[-1][0] - 0.5
    steady = [rcpt for at, rcpt in arrivals if start <= at <= end]
    rate = len(steady) / (end - start)
    assert abs(rate - RATE) <= RATE * 0.10, (rate, RATE)
    # Both processes sent a good share of the steady part.
    node_of = dict(Delivery.objects.values_list("subscriber__email", "batch__node"))
    shares = Counter(node_of[rcpt].partition("@")[0] for rcpt in steady)
    assert set(shares) == {celery_worker_process.name, second.name}, shares
    assert min(shares.values()) >= len(steady) * 0.25, shares
