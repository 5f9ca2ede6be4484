"""Hooks into Celery's worker lifecycle (framework events): node registration."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from sending import nodes

_heartbeat: nodes.Heartbeat | None = None


@worker_ready.connect
def on_worker_ready(sender: Any, **kwargs: Any) -> None:
    global _heartbeat
    controller = sender.controller
    info = nodes.NodeInfo(
        name=sender.hostname,
        queues=sorted(sender.app.amqp.queues.consume_from),
        concurrency=controller.concurrency,
    )
    nodes.register(info)
    _heartbeat = nodes.Heartbeat(sender.app, info)
    _heartbeat.beat()
    _heartbeat.start()


@worker_process_init.connect
def on_worker_process_init(**kwargs: Any) -> None:
    # A child that replaces a killed one takes over its slot: not its last activity.
    nodes.activity.doing("")


@worker_shutdown.connect
def on_worker_shutdown(sender: Any, **kwargs: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
        nodes.mark_stopped(_heartbeat.info.name)
