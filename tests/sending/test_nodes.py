"""Worker nodes register themselves, beat, and obey "disabled" without a restart."""

from __future__ import annotations

import time

import pytest

from mailpanel.celery import app
from sending import nodes
from sending.models import Node


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
