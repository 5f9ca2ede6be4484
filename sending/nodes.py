"""The worker node registry: each worker process registers, beats, and obeys "disabled".

A disabled node stops consuming the ``send`` queue (Celery's cancel_consumer, sent
to that node alone) and takes it up again when enabled, without a restart. Work it
already holds finishes normally.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

import celery
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from sending.models import Node

logger = logging.getLogger(__name__)

SEND_QUEUE = "send"


@dataclass
class NodeInfo:
    name: str
    queues: list[str]
    concurrency: int


def register(info: NodeInfo) -> Node:
    """Creates or refreshes the node's row at worker start; keeps an operator's "disabled"."""
    now = timezone.now()
    node, _ = Node.objects.update_or_create(
        name=info.name,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": info.queues,
            "concurrency": info.concurrency,
            "version": celery.__version__,
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
            "consuming_send": SEND_QUEUE in info.queues,
            "activity": "",
        },
    )
    return node


def heartbeat(name: str) -> Node | None:
    """Marks the node alive; returns its row (None if an operator deleted it)."""
    Node.objects.filter(name=name).update(heartbeat_at=timezone.now(), stopped_at=None)
    return Node.objects.filter(name=name).first()


def mark_stopped(name: str) -> None:
    Node.objects.filter(name=name).update(stopped_at=timezone.now(), consuming_send=False)


def set_enabled(node: Node, enabled: bool) -> None:
    """Operators' switch; the node itself applies it at its next heartbeat."""
    Node.objects.filter(id=node.id).update(enabled=enabled)


class Heartbeat(threading.Thread):
    """Runs in the worker's main process: beats, and applies the enabled flag."""

    def __init__(self, app: celery.Celery, info: NodeInfo) -> None:
        super().__init__(name="mailpanel-node-heartbeat", daemon=True)
        self.app = app
        self.info = info
        self.stopping = threading.Event()
        self.consuming_send = SEND_QUEUE in info.queues

    def run(self) -> None:
        while not self.stopping.wait(settings.NODE_HEARTBEAT_SECONDS):
            self.beat()

    def beat(self) -> None:
        try:
            close_old_connections()
            # A row removed by an operator (or a test's flush) is simply registered again.
            node = heartbeat(self.info.name) or register(self.info)
            if SEND_QUEUE in self.info.queues:
                self.apply_enabled(node.enabled)
        except Exception:
            # A heartbeat must never take the worker down; the node just shows as lost.
            logger.exception("node heartbeat failed")
        finally:
            # This thread's connection must not linger into forked pool children.
            connection.close()

    def apply_enabled(self, enabled: bool) -> None:
        if enabled == self.consuming_send:
            return
        control = self.app.control
        if enabled:
            control.add_consumer(SEND_QUEUE, destination=[self.info.name])
        else:
            control.cancel_consumer(SEND_QUEUE, destination=[self.info.name])
        self.consuming_send = enabled
        Node.objects.filter(name=self.info.name).update(consuming_send=enabled)
        logger.info("node %s %s the send queue", self.info.name, "resumed" if enabled else "left")

    def stop(self) -> None:
        self.stopping.set()
