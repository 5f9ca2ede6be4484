from __future__ import annotations

from celery import shared_task

from sending import delivery, dispatch
from sending.models import Node, SendBatch


@shared_task(ignore_result=True)
def dispatch_tick() -> None:
    dispatch.tick()


# Late acknowledgement and reject-on-worker-lost: a killed child's message goes back
# to the queue; the batch's conditional claim makes a second delivery of it harmless.
@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
    soft_time_limit=3600, time_limit=3700,
)  # fmt: skip
def send_batch(self, batch_id: int) -> None:  # noqa: ANN001
    node = self.request.hostname or "unknown"
    if Node.objects.filter(name=node, enabled=False).exists():
        # Disabled, but the message came before the heartbeat took the node off the send
        # queue (or was prefetched): give the batch back unclaimed, and the next
        # dispatcher tick queues it again for a node that is enabled.
        SendBatch.objects.filter(id=batch_id, status=SendBatch.Status.QUEUED).update(
            enqueued_at=None
        )
        return
    delivery.run_batch(batch_id, node)
