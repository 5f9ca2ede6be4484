"""Recovering list jobs whose worker died or whose task message was lost.

Imports, exports and bulk actions are each run by one task message. A worker killed
during an import (a deploy, the OOM killer) leaves the job running with a stale
heartbeat; a broker that lost its queue (a Redis restart without persistence) leaves
jobs queued that no worker will ever take. The beat task ``lists.tasks.recover_jobs``
calls :func:`recover` every minute to put both right.

Sending a job's message twice is safe: every run claims its job with an UPDATE on
``status = queued``, so whichever copy comes first runs the job and the others find it
no longer queued and return at once. That is why a message is simply sent again when
its job has been waiting for REPUBLISH_AFTER, rather than the broker's queue being
searched for it: a job still waiting behind long imports gets a harmless duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery import Task
from django.db.models import Q
from django.utils import timezone

from lists import imports, tasks
from lists.models import BulkJob, ExportJob, ImportJob

logger = logging.getLogger(__name__)

# Far longer than a message waits in a queue that workers are taking from, short enough
# that a lost job starts within minutes of its owner noticing it has not.
REPUBLISH_AFTER = timedelta(minutes=10)
# Per kind of job and per tick: recovery after an outage spreads over a few minutes
# instead of queueing every job at once.
BATCH = 100


@dataclass(frozen=True)
class Recovered:
    resumed_imports: int
    republished: int


def recover() -> Recovered:
    """Resumes imports whose worker died and sends lost task messages again."""
    resumed = resume_interrupted_imports()
    runners = (
        (ImportJob, tasks.run_import),
        (ExportJob, tasks.run_export),
        (BulkJob, tasks.run_bulk_job),
    )
    republished = sum(republish_lost(model, task) for model, task in runners)
    if resumed or republished:
        logger.warning(
            "recovered list jobs: %s imports resumed, %s task messages sent again",
            resumed,
            republished,
        )
    return Recovered(resumed, republished)


def resume_interrupted_imports() -> int:
    """Queues interrupted imports again; each continues after its last committed chunk."""
    due = ImportJob.objects.filter(imports.resumable_by_itself()).only("id")
    return sum(imports.resume(job, automatic=True) for job in due.order_by("heartbeat_at")[:BATCH])


def republish_lost(model: type[ImportJob | ExportJob | BulkJob], task: Task) -> int:
    """Sends ``task`` again for each job of ``model`` that has been queued too long."""
    now = timezone.now()
    cutoff = now - REPUBLISH_AFTER
    # A job never sent again counts from its creation (imports: from their start).
    waiting = Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)
    due = model.objects.filter(waiting, status=model.Status.QUEUED)
    sent = 0
    for job_id in due.order_by("id").values_list("id", flat=True)[:BATCH]:
        # Claimed by moving queued_at on, so that two beats running by mistake do not
        # both send it, and the next send waits another REPUBLISH_AFTER.
        if due.filter(id=job_id).update(queued_at=now):
            task.delay(job_id)
            sent += 1
    return sent
