"""The pipeline on real worker processes: every recipient exactly once, signed, and
nothing sent twice when a worker is killed in the middle of a batch."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dkim
import pytest
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from lists import subscriptions
from sending import dispatch, domains
from sending.models import Delivery, Relay
from tests.factories import MailingListFactory
from tests.sending.test_pipeline import make_campaign
from tests.services import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def make_audience(owner, count: int):  # noqa: ANN001, ANN201
    from lists.models import Subscriber, Subscription

    mailing_list = MailingListFactory(owner=owner)
    subscribers = Subscriber.objects.bulk_create(
        [Subscriber(account=owner, email=f"r{i}@example.org", domain="example.org", name=f"R {i}")
         for i in range(count)]
    )  # fmt: skip
    Subscription.objects.bulk_create(
        [Subscription(mailing_list=mailing_list, subscriber=s, status="confirmed", source="import")
         for s in subscribers]
    )  # fmt: skip
    subscriptions.recount([mailing_list.id])
    return mailing_list


def drive(campaign: Campaign, until: float, worker: WorkerProcess) -> None:
    """Plays beat: ticks the dispatcher until the campaign is sent."""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        dispatch.tick()
        campaign.refresh_from_db()
        if campaign.status == Campaign.Status.SENT:
            return
        time.sleep(0.5)
    raise AssertionError(f"campaign still {campaign.status}:\n{worker.output()[-3000:]}")


@pytest.mark.redis
def test_many_recipients_each_get_one_signed_message(
    owner, smtp_server, celery_worker_process
) -> None:  # noqa: ANN001, E501
    count = 2000
    Relay.objects.create(name="loop", host=smtp_server.host, port=smtp_server.port,
                         security="none", rate_per_second=100000)  # fmt: skip
    domain = domains.create("example.com", account=owner)
    domain.verified_at = timezone.now()
    domain.save()
    campaign = make_campaign(owner, [make_audience(owner, count)])
    scheduling.schedule(campaign)

    drive(campaign, 180, celery_worker_process)

    messages = smtp_server.wait_for(count)
    recipients = [m.rcpt_tos[0] for m in messages]
    assert len(recipients) == count == len(set(recipients))
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == count
    records = {r.name: r.value for r in domains.records(domain)}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    for message in messages[:: count // 20]:
        assert dkim.verify(message.data, dnsfunc=dns), message.data[:500]


class SlowHandler:
    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        import asyncio

        await asyncio.sleep(0.02)
        self.received.append(envelope.rcpt_tos[0])
        return "250 OK"


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.redis
def test_a_worker_child_killed_mid_batch_sends_nothing_twice(owner, settings, tmp_path) -> None:  # noqa: ANN001
    from aiosmtpd.controller import Controller

    from tests.services import free_port

    settings.SEND_BATCH_LEASE_SECONDS = 3
    settings.SEND_CHUNK_SIZE = 10
    handler, port = SlowHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    worker = WorkerProcess(
        tmp_path / "worker.log", {"SEND_BATCH_LEASE_SECONDS": "3", "SEND_CHUNK_SIZE": "10"}
    )
    try:
        worker.wait_ready()
        Relay.objects.create(name="slow", host="127.0.0.1", port=port, security="none",
                             rate_per_second=100000)  # fmt: skip
        count = 200
        campaign = make_campaign(owner, [make_audience(owner, count)])
        scheduling.schedule(campaign)
        dispatch.tick()
        deadline = time.monotonic() + 60
        while len(handler.received) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = child_pids(worker.process.pid)
        assert children, worker.output()
        os.kill(children[0], signal.SIGKILL)  # the pool child holding the batch

        drive(campaign, 120, worker)

        received = handler.received
        assert len(received) == len(set(received)), "a recipient got two copies"
        statuses = dict(
            Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "status")
        )
        assert len(statuses) == count  # nobody skipped
        assert set(statuses.values()) <= {"sent", "unknown"}
        unknown = [e for e, s in statuses.items() if s == "unknown"]
        assert set(received) | set(unknown) == set(statuses)
        assert len(unknown) <= settings.SEND_CHUNK_SIZE
    finally:
        worker.stop()
        controller.stop()
