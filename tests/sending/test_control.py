"""Pause, resume and cancel reach a real worker in the middle of a batch, between
recipients, within seconds, even when the relay's rate makes a chunk take long."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from campaigns import scheduling
from campaigns.models import Campaign
from sending import dispatch
from sending.models import Delivery, Relay, SendBatch
from tests.sending.test_pipeline import make_campaign
from tests.sending.test_workers import drive, make_audience
from tests.services import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240), pytest.mark.redis]

RATE = 10  # messages a second: one chunk of 250 would take 25 s
COUNT = 80


@dataclass
class TimedHandler:
    received: list[tuple[float, str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.received.append((time.monotonic(), envelope.rcpt_tos[0]))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count


@pytest.fixture
def slow_relay():  # noqa: ANN201
    handler, port = TimedHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    Relay.objects.create(name=f"slow-{port}", host="127.0.0.1", port=port, security="none",
                         rate_per_second=RATE)  # fmt: skip
    yield handler
    controller.stop()


def sending_campaign(owner) -> Campaign:  # noqa: ANN001
    campaign = make_campaign(owner, [make_audience(owner, COUNT)])
    scheduling.schedule(campaign)
    dispatch.tick()
    return Campaign.objects.get(pk=campaign.pk)


def test_pause_mid_batch_stops_within_seconds_and_resume_sends_the_rest_once(
    owner, slow_relay, celery_worker_process
) -> None:  # noqa: ANN001, E501
    campaign = sending_campaign(owner)
    slow_relay.wait_for(15)
    scheduling.pause(campaign)
    paused_at = time.monotonic()
    time.sleep(6)
    last = max(at for at, _ in slow_relay.received)
    assert last - paused_at < 5, f"a message {last - paused_at:.1f}s after the pause"
    stopped_at = len(slow_relay.received)
    assert stopped_at < COUNT
    assert SendBatch.objects.get(campaign=campaign).status == SendBatch.Status.QUEUED  # parked
    statuses = set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses <= {"sent", "queued"}  # the rest given back, none left "sending"

    scheduling.resume(Campaign.objects.get(pk=campaign.pk))
    drive(campaign, 60, celery_worker_process)
    recipients = [rcpt for _, rcpt in slow_relay.received]
    assert len(recipients) == len(set(recipients)) == COUNT  # no duplicate, no skip
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == COUNT


def test_cancel_mid_batch_stops_within_seconds(owner, slow_relay, celery_worker_process) -> None:  # noqa: ANN001
    campaign = sending_campaign(owner)
    slow_relay.wait_for(15)
    scheduling.cancel(campaign)
    cancelled_at = time.monotonic()
    time.sleep(6)
    last = max(at for at, _ in slow_relay.received)
    assert last - cancelled_at < 5
    assert len(slow_relay.received) < COUNT
    deadline = time.monotonic() + 10
    while SendBatch.objects.exclude(status="done").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not SendBatch.objects.filter(campaign=campaign).exclude(status="done").exists()
