"""The test suite's Celery worker is a real process on the test database and broker."""

from __future__ import annotations

import os
import time

import pytest

from mailpanel.tasks import prune_outbox


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_queued_task(celery_worker_process) -> None:  # noqa: ANN001
    outbox = celery_worker_process.work_dir / "outbox" / "new"
    outbox.mkdir(parents=True, exist_ok=True)
    stale = outbox / "1.M1P1Q1.test"
    stale.write_bytes(b"Subject: old\r\n\r\nbody\r\n")
    past = time.time() - 60 * 86400
    os.utime(stale, (past, past))

    prune_outbox.delay()

    deadline = time.monotonic() + 30
    while stale.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stale.exists(), celery_worker_process.output()
