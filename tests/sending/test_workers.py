"""The pipeline on real worker processes: every recipient exactly once, signed, and
nothing sent twice when a worker is killed in the middle of a batch."""

from __future__ import annotations

import email.policy
import os
import re
import signal
import time
from email.parser import BytesHeaderParser
from pathlib import Path

import dkim
import pytest
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from lists import blocklist, subscriptions
from lists.models import Subscriber
from mailpanel.lib import signing
from sending import dispatch, domains, message, nodes, verp
from sending.models import Delivery, Node, Relay, SendBatch
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


HEADERS = BytesHeaderParser(policy=email.policy.compat32)
UNSUBSCRIBE = re.compile(r"<(https?://[^>]+/s/unsubscribe/[^>]+)>, <mailto:([^>]+)>")
SIGNED_HEADERS = re.compile(r"\bh=([^;]+);")


@pytest.mark.redis
def test_many_recipients_each_get_one_signed_message(
    owner, smtp_server, settings, celery_worker_process
) -> None:  # noqa: ANN001, E501
    count = 5000
    Relay.objects.create(name="loop", host=smtp_server.host, port=smtp_server.port,
                         security="none", rate_per_second=100000)  # fmt: skip
    domain = domains.create("example.com", account=owner)
    domain.verified_at = timezone.now()
    domain.save()
    mailing_list = make_audience(owner, count)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)

    drive(campaign, 180, celery_worker_process)

    messages = smtp_server.wait_for(count)
    recipients = [m.rcpt_tos[0] for m in messages]
    assert len(recipients) == count == len(set(recipients))
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == count

    # Every signature verifies with dkimpy, the reference implementation: about 1 to 2 ms
    # a message here, 5 to 9 s for all. A pool of processes was no faster on two busy
    # cores (6 to 12 s with its start-up and copying), so it runs here.
    records = {r.name: r.value for r in domains.records(domain)}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    unverified = [i for i, m in enumerate(messages) if not dkim.verify(m.data, dnsfunc=dns)]
    assert unverified == []

    # Every message carries its own delivery's headers.
    email_of = dict(
        Delivery.objects.filter(campaign=campaign).values_list("id", "subscriber__email")
    )
    subscriber_of = dict(Subscriber.objects.filter(account=owner).values_list("email", "id"))
    list_id = message.list_id_header(mailing_list.name, mailing_list.uuid.hex)
    bounce_domain = settings.BOUNCE_DOMAIN or "example.com"
    message_ids = set()
    for received in messages:
        rcpt = received.rcpt_tos[0]
        headers = HEADERS.parsebytes(received.data)
        delivery_id = verp.delivery_id_from(received.mail_from)  # the signed VERP return path
        assert email_of[delivery_id] == rcpt and headers["To"].endswith(f"<{rcpt}>")
        assert received.mail_from.endswith(f"@{bounce_domain}")
        assert headers["Message-ID"] == f"<{campaign.uuid.hex}.{delivery_id}@example.com>"
        message_ids.add(headers["Message-ID"])
        url, mailto = UNSUBSCRIBE.fullmatch(headers["List-Unsubscribe"]).groups()
        token = signing.read_unsubscribe_token(url.rstrip("/").rpartition("/")[2])
        assert (token.subscriber_id, token.list_id) == (subscriber_of[rcpt], mailing_list.id)
        assert mailto == f"unsubscribe@{bounce_domain}"
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Id"] == list_id
        assert headers["Feedback-ID"] == f"{campaign.pk}:{owner.pk}:mailpanel"
        signed = SIGNED_HEADERS.search(headers["DKIM-Signature"]).group(1).split(":")
        assert {"message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post",
                "feedback-id"} <= set(signed)  # fmt: skip
    assert len(message_ids) == count


class SlowHandler:
    def __init__(self, delay: float = 0.02) -> None:
        self.received: list[str] = []
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        import asyncio

        await asyncio.sleep(self.delay)
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


def start_slow_server(delay: float = 0.02):  # noqa: ANN201
    from aiosmtpd.controller import Controller

    from tests.services import free_port

    handler, port = SlowHandler(delay), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    Relay.objects.create(name="slow", host="127.0.0.1", port=port, security="none",
                         rate_per_second=100000)  # fmt: skip
    return controller, handler


def wait_for(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_each_once(campaign: Campaign, received: list[str], count: int, chunk: int) -> None:
    assert len(received) == len(set(received)), "a recipient got two copies"
    statuses = dict(
        Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "status")
    )
    assert len(statuses) == count  # nobody skipped
    assert set(statuses.values()) <= {"sent", "unknown"}
    unknown = [e for e, s in statuses.items() if s == "unknown"]
    assert set(received) | set(unknown) == set(statuses)
    assert len(unknown) <= chunk


@pytest.mark.redis
def test_a_whole_worker_killed_mid_batch_sends_nothing_twice(
    owner, settings, tmp_path, celery_worker_process
) -> None:  # noqa: ANN001
    # The main process and its pool child die at once (a host lost): the broker keeps the
    # task unacknowledged for hours, so the batch's lease is what brings it back.
    settings.SEND_BATCH_LEASE_SECONDS = 3
    settings.SEND_BATCH_SIZE = 50
    controller, handler = start_slow_server()
    victim = WorkerProcess(
        tmp_path / "victim.log",
        {"SEND_BATCH_LEASE_SECONDS": "3", "SEND_CHUNK_SIZE": "10"},
        name="victim",
    )
    try:
        victim.wait_ready()
        count = 200
        campaign = make_campaign(owner, [make_audience(owner, count)])
        scheduling.schedule(campaign)
        dispatch.tick()
        held = SendBatch.objects.filter(
            campaign=campaign, status="sending", node__startswith=f"{victim.name}@"
        )
        wait_for(lambda: held.exists() and Delivery.objects.filter(
            batch__in=held, status="sent").count() >= 10)  # fmt: skip
        os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)

        drive(campaign, 120, celery_worker_process)

        assert_each_once(campaign, handler.received, count, chunk=10)
        batch = SendBatch.objects.filter(campaign=campaign, claims__gt=1).get()
        assert not batch.node.startswith(f"{victim.name}@")  # another worker finished it
    finally:
        victim.stop()
        controller.stop()


@pytest.mark.redis
def test_blocklisting_an_address_during_a_send_stops_its_mail(
    owner, settings, celery_worker_process
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 20
    controller, handler = start_slow_server()
    try:
        count = 80
        campaign = make_campaign(owner, [make_audience(owner, count)])
        scheduling.schedule(campaign)
        dispatch.tick()
        wait_for(lambda: len(handler.received) >= 1)
        # The last recipients are in a batch still waiting: planned before the entry.
        blocked = [f"r{count - 1}@example.org", f"r{count - 2}@example.org"]
        blocklist.add_entries(blocked[0], account=owner)
        blocklist.add_entries(blocked[1], account=None)  # the operators' global list
        drive(campaign, 120, celery_worker_process)
        assert len(handler.received) == count - 2
        assert not set(blocked) & set(handler.received)
    finally:
        controller.stop()


@pytest.mark.redis
def test_a_disabled_node_takes_no_new_batch(
    owner, smtp_server, settings, tmp_path, celery_worker_process
) -> None:  # noqa: ANN001
    # The disabled node's heartbeat is slow, so it still gets send messages (as a node
    # does between the switch and its next beat, or with tasks it prefetched): it must
    # hand each batch back instead of sending it.
    settings.SEND_BATCH_SIZE = 10
    Relay.objects.create(name="loop", host=smtp_server.host, port=smtp_server.port,
                         security="none", rate_per_second=100000)  # fmt: skip
    idle = WorkerProcess(tmp_path / "idle.log", {"NODE_HEARTBEAT_SECONDS": "600"}, name="idle")
    try:
        idle.wait_ready()
        wait_for(lambda: Node.objects.filter(name__startswith=f"{idle.name}@").exists())
        node = Node.objects.get(name__startswith=f"{idle.name}@")
        nodes.set_enabled(node, False)
        campaign = make_campaign(owner, [make_audience(owner, 60)])
        scheduling.schedule(campaign)

        drive(campaign, 120, celery_worker_process)

        assert len(smtp_server.wait_for(60)) == 60
        assert not SendBatch.objects.filter(node=node.name).exists()
        assert not Delivery.objects.filter(batch__node=node.name).exists()
        assert "sending.tasks.send_batch" in idle.output()  # it did get send messages
    finally:
        idle.stop()
