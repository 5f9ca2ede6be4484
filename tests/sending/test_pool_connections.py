"""A relay's connection limit holds across every worker process: a connection takes one
of the relay's slots in Redis before it opens and gives it back when it closes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from django.utils import timezone

from campaigns import scheduling
from sending import slots
from sending.models import Delivery, Relay, SendBatch
from tests.sending.test_failures import audience
from tests.sending.test_pipeline import make_campaign, run_pipeline
from tests.sending.test_workers import drive, make_audience
from tests.services import WorkerProcess, free_port

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_slots():  # noqa: ANN201
    """The slot sets of the relays a test makes, empty at its start (ids repeat per
    test database, Redis outlives it)."""
    client = slots._client()
    made: list[int] = []

    def clear(relay: Relay) -> Relay:
        client.delete(slots.key(relay.id))
        made.append(relay.id)
        return relay

    yield clear
    for relay_id in made:
        client.delete(slots.key(relay_id))


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_a_relay_whose_connections_are_all_open_elsewhere_is_passed_over_not_cooled(
    owner, scripted, redis_slots, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    busy, busy_relay = scripted(name="alpha", weight=1_000_000)
    spare, spare_relay = scripted(name="beta", weight=1)
    Relay.objects.filter(id=busy_relay.id).update(max_connections=1)
    busy_relay.refresh_from_db()
    redis_slots(busy_relay), redis_slots(spare_relay)
    elsewhere = slots.acquire(busy_relay)  # another worker's open connection
    mailing_list, emails = audience(owner, 5)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)

    run_pipeline(settings, django_capture_on_commit_callbacks)

    assert busy.messages == []
    assert sorted(m.rcpt_tos[0] for m in spare.messages) == sorted(emails)
    busy_relay.refresh_from_db()
    assert (busy_relay.consecutive_failures, busy_relay.cooldown_until) == (0, None)
    # The slots are given back when the batch ends: the next campaign may use the relay.
    assert slots.held(spare_relay.id) == 0
    elsewhere.release()
    later = make_campaign(owner, [mailing_list])
    scheduling.schedule(later)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in busy.messages) == sorted(emails)


@pytest.mark.django_db
def test_a_slot_its_holder_stopped_renewing_frees_itself(redis_slots) -> None:  # noqa: ANN001
    relay = redis_slots(Relay.objects.create(name="r", host="127.0.0.1", max_connections=1))
    client = slots._client()
    # A worker killed with its connection open: its slot was not renewed and ran out.
    client.zadd(slots.key(relay.id), {"gone-host:1:dead": int(time.time() * 1000) - 1000})
    held = slots.acquire(relay)
    with pytest.raises(slots.NoSlot):
        slots.acquire(relay)
    assert client.zscore(slots.key(relay.id), "gone-host:1:dead") is None
    held.release()
    slots.acquire(relay).release()


class CountingSMTP(SMTP):
    """Counts the sessions open at once, the most ever (``peak``) included."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.event_handler.opened()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.closed()


class CountingHandler:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.open = self.peak = 0
        self.received: list[str] = []
        self.lock = threading.Lock()

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        with self.lock:
            self.open -= 1

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        await asyncio.sleep(self.delay)
        self.received.append(envelope.rcpt_tos[0])
        return "250 OK"


class CountingController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_two_worker_processes_keep_to_the_relays_connection_limit(
    owner, settings, tmp_path, redis_slots
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 15
    handler, port = CountingHandler(delay=0.1), free_port()
    controller = CountingController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    relay = Relay.objects.create(name="narrow", host="127.0.0.1", port=port, security="none",
                                 rate_per_second=100000, max_connections=1)  # fmt: skip
    redis_slots(relay)
    workers = [WorkerProcess(tmp_path / f"w{i}.log", name=f"limit{i}") for i in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        campaign = make_campaign(owner, [make_audience(owner, 60)])  # four batches at once
        scheduling.schedule(campaign, timezone.now())

        drive(campaign, 180, workers[0])

        assert len(handler.received) == len(set(handler.received)) == 60
        assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 60
        nodes = set(SendBatch.objects.filter(campaign=campaign).values_list("node", flat=True))
        assert {n.split("@")[0] for n in nodes} >= {w.name for w in workers}  # both sent
        assert handler.peak == 1
        assert slots.held(relay.id) == 0
    finally:
        for worker in workers:
            worker.stop()
        controller.stop()
