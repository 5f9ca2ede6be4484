"""Worker nodes register themselves, beat, and obey "disabled" without a restart."""

from __future__ import annotations

import time

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse

from campaigns import scheduling
from mailpanel.celery import app
from sending import dispatch, nodes
from sending.models import Node, Relay
from tests.sending.test_control import COUNT, TimedHandler
from tests.sending.test_pipeline import make_campaign
from tests.sending.test_workers import drive, make_audience
from tests.services import free_port


def wait_until(predicate, timeout: float = 30.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def send_queue_consumed(name: str) -> bool:
    replies = app.control.inspect(destination=[name], timeout=2).active_queues() or {}
    return any(q["name"] == "send" for q in replies.get(name, []))


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_registers_and_a_disabled_node_leaves_the_send_queue(
    celery_worker_process,
) -> None:  # noqa: ANN001
    assert wait_until(lambda: Node.objects.filter(pid__gt=0).exists()), (
        celery_worker_process.output()
    )
    node = Node.objects.get()
    assert node.state == "running"
    assert "send" in node.queues and node.concurrency == 1
    assert send_queue_consumed(node.name)

    nodes.set_enabled(node, False)
    assert wait_until(lambda: not send_queue_consumed(node.name)), celery_worker_process.output()
    node.refresh_from_db()
    assert node.state == "disabled" and not node.consuming_send

    nodes.set_enabled(node, True)
    assert wait_until(lambda: send_queue_consumed(node.name)), celery_worker_process.output()


@pytest.mark.django_db
def test_a_node_without_heartbeats_shows_as_lost() -> None:
    info = nodes.NodeInfo(name="w1@host", queues=["send"], concurrency=2)
    node = nodes.register(info)
    assert node.state == "running"
    Node.objects.filter(id=node.id).update(heartbeat_at=Node.lost_cutoff())
    node.refresh_from_db()
    assert node.state == "lost"
    assert node not in Node.objects.alive()
    nodes.mark_stopped("w1@host")
    node.refresh_from_db()
    assert node.state == "stopped"


@pytest.mark.django_db
def test_the_heartbeat_writes_what_the_processes_do_and_how_fast() -> None:
    info = nodes.NodeInfo(name="w2@host", queues=["send"], concurrency=1)
    nodes.register(info)
    beat = nodes.Heartbeat(app, info)
    base, _ = nodes.activity.snapshot()
    beat.rate.update(base, time.monotonic() - 2)  # the previous beat, 2 s ago
    nodes.activity.doing("batch 7 of campaign 3 “Launch”")
    nodes.activity.sent(40)
    try:
        figures = beat.figures()
    finally:
        nodes.activity.doing("")
    assert figures["activity"] == "batch 7 of campaign 3 “Launch”"
    assert figures["messages_sent"] == base + 40
    assert figures["messages_per_second"] == pytest.approx(20, rel=0.1)
    nodes.heartbeat(info.name, **figures)
    node = Node.objects.get(name=info.name)
    assert (node.activity, node.messages_sent) == (figures["activity"], base + 40)


def test_the_rate_is_messages_between_two_heartbeats() -> None:
    rate = nodes.Rate()
    assert rate.update(100, 50.0) == 0  # the first beat has nothing to compare with
    assert rate.update(600, 60.0) == 50.0
    assert rate.update(600, 70.0) == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_sending_node_shows_its_batch_and_rate_in_the_admin(
    owner, celery_worker_process, client, operator
) -> None:  # noqa: ANN001
    assert wait_until(lambda: Node.objects.filter(pid__gt=0).exists())
    base = Node.objects.get().messages_sent
    handler, port = TimedHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        Relay.objects.create(name="paced", host="127.0.0.1", port=port, security="none",
                             rate_per_second=20)  # fmt: skip
        campaign = make_campaign(owner, [make_audience(owner, COUNT)])
        scheduling.schedule(campaign)
        dispatch.tick()
        busy = f"of campaign {campaign.pk} “{campaign.name}”"
        assert wait_until(
            lambda: busy in Node.objects.get().activity and Node.objects.get().messages_per_second
        ), (list(Node.objects.values()), celery_worker_process.output()[-3000:])
        client.force_login(operator)
        page = client.get(reverse("admin:sending_node_changelist")).content.decode()
        assert busy in page
        drive(campaign, 60, celery_worker_process)
        assert wait_until(lambda: Node.objects.get().activity == "")
        assert Node.objects.get().messages_sent >= base + COUNT
    finally:
        controller.stop()
