"""The worker node registry: each worker process registers, beats, and obeys "disabled".

A disabled node stops consuming the ``send`` queue (Celery's cancel_consumer, sent
to that node alone) and takes it up again when enabled, without a restart. Work it
already holds finishes normally.

What a node is doing and how fast it sends is kept in memory shared by the worker's
main process and its forked pool children (:class:`Activity`); the heartbeat writes it
to the node's row, so the send path never touches the database for it.
"""

from __future__ import annotations

import logging
import mmap
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

import celery
from billiard.process import current_process
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from sending.models import Node

logger = logging.getLogger(__name__)

SEND_QUEUE = "send"


class Activity:
    """Per pool process: messages sent so far and what it is doing, in one shared slot.

    The mapping is made when this module is imported, in the worker's main process
    before the pool forks, so every child (and a child that replaces a dead one) writes
    into memory the main process reads. Each process writes only its own slot (its pool
    index), so no lock is needed; a torn read of the text only shows for one heartbeat.
    Counting a message is one addition in memory: it is done per message.
    """

    SLOTS = 64
    TEXT_BYTES = 200
    TEXT = struct.Struct(f"<H{TEXT_BYTES}s")  # length, text

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, self.SLOTS * (8 + self.TEXT.size))
        self.counts = memoryview(self.memory)[: self.SLOTS * 8].cast("Q")

    @staticmethod
    def _slot() -> int:
        return (getattr(current_process(), "index", None) or 0) % Activity.SLOTS

    def _text_at(self, slot: int) -> int:
        return self.SLOTS * 8 + slot * self.TEXT.size

    def doing(self, text: str) -> None:
        """Says what this process does now ("" when idle)."""
        data = text.encode()[: self.TEXT_BYTES]
        self.TEXT.pack_into(self.memory, self._text_at(self._slot()), len(data), data)

    def sent(self, count: int = 1) -> None:
        self.counts[self._slot()] += count

    def snapshot(self) -> tuple[int, list[str]]:
        """Messages sent by all the worker's processes, and what each busy one does."""
        texts = []
        for slot in range(self.SLOTS):
            length, data = self.TEXT.unpack_from(self.memory, self._text_at(slot))
            if length:
                texts.append(data[:length].decode("utf-8", "replace"))
        return sum(self.counts), texts


activity = Activity()


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
            "messages_sent": 0,
            "messages_per_second": 0,
        },
    )
    return node


@dataclass
class Rate:
    """Messages per second between two heartbeats, from the running total."""

    total: int = 0
    at: float = 0.0

    def update(self, total: int, now: float) -> float:
        elapsed = now - self.at if self.at else 0.0
        rate = (total - self.total) / elapsed if elapsed > 0 else 0.0
        self.total, self.at = total, now
        return max(rate, 0.0)


def heartbeat(name: str, **figures: object) -> Node | None:
    """Marks the node alive with its latest ``figures`` (activity, messages_sent,
    messages_per_second); returns its row (None if an operator deleted it)."""
    Node.objects.filter(name=name).update(heartbeat_at=timezone.now(), stopped_at=None, **figures)
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
        self.rate = Rate()

    def run(self) -> None:
        while not self.stopping.wait(settings.NODE_HEARTBEAT_SECONDS):
            self.beat()

    def beat(self) -> None:
        try:
            close_old_connections()
            # A row removed by an operator (or a test's flush) is simply registered again.
            node = heartbeat(self.info.name, **self.figures()) or register(self.info)
            if SEND_QUEUE in self.info.queues:
                self.apply_enabled(node.enabled)
        except Exception:
            # A heartbeat must never take the worker down; the node just shows as lost.
            logger.exception("node heartbeat failed")
        finally:
            # This thread's connection must not linger into forked pool children.
            connection.close()

    def figures(self) -> dict[str, object]:
        sent, doing = activity.snapshot()
        return {
            "activity": "; ".join(doing)[:300],
            "messages_sent": sent,
            "messages_per_second": round(self.rate.update(sent, time.monotonic()), 1),
        }

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
