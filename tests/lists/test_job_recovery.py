"""Recovering list jobs: imports whose worker died resume by themselves, and jobs whose
task message was lost are sent again, through the beat task's domain function."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files import File
from django.urls import reverse
from django.utils import timezone

from lists import bulk, exports, imports, job_recovery, subscriptions, tasks
from lists.models import BulkJob, ExportJob, ImportJob, MailingList, Subscription
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory

ROWS = "email\n" + "".join(f"p{i:02d}@example.org\n" for i in range(10))


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    # Not for the real worker's test: that process keeps the media root of its settings.
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def mailing_list(owner, media) -> MailingList:  # noqa: ANN001
    return MailingListFactory(owner=owner)


@pytest.fixture
def sent(monkeypatch) -> dict[str, list[int]]:  # noqa: ANN001
    """The task messages recovery sends, by task, instead of sending them."""
    messages: dict[str, list[int]] = {"import": [], "export": [], "bulk": []}
    monkeypatch.setattr(tasks.run_import, "delay", messages["import"].append)
    monkeypatch.setattr(tasks.run_export, "delay", messages["export"].append)
    monkeypatch.setattr(tasks.run_bulk_job, "delay", messages["bulk"].append)
    return messages


def queued_import(mailing_list: MailingList) -> ImportJob:
    """An import started whose task message never reached a worker."""
    job = imports.create_job(
        mailing_list, mailing_list.owner, File(io.BytesIO(ROWS.encode()), name="people.csv")
    )
    imports.start(job, job.mapping, ImportJob.Mode.CONFIRMED, ImportJob.Existing.UPDATE,
                  enqueue=False)  # fmt: skip
    return job


def interrupted_import(mailing_list: MailingList, *, auto_resumes: int = 0) -> ImportJob:
    """An import whose worker died after two chunks of four rows."""
    job = queued_import(mailing_list)
    imports.run(job.id, chunk_rows=4, max_chunks=2)
    ImportJob.objects.filter(id=job.id).update(
        heartbeat_at=timezone.now() - ImportJob.STALE_AFTER * 2, auto_resumes=auto_resumes
    )
    job.refresh_from_db()
    return job


def age(job: ImportJob | ExportJob | BulkJob, by: timedelta) -> None:
    """As if the job had been queued ``by`` ago (an export or bulk action has no
    queued_at until recovery sends it again: it waits from its creation)."""
    then = timezone.now() - by
    stamps = {"created_at": then, **({"queued_at": then} if job.queued_at else {})}
    type(job).objects.filter(id=job.id).update(**stamps)


# --- Imports whose worker died --------------------------------------------------------------


def test_an_import_whose_worker_died_resumes_and_finishes_without_importing_twice(
    mailing_list: MailingList, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    job = interrupted_import(mailing_list)
    assert job.is_interrupted and job.imported == 8

    with django_capture_on_commit_callbacks(execute=True):
        recovered = job_recovery.recover()

    assert recovered == job_recovery.Recovered(resumed_imports=1, republished=0)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (job.rows_read, job.imported, job.rejected, job.auto_resumes) == (10, 10, 0, 1)
    assert Subscription.objects.filter(mailing_list=mailing_list).count() == 10
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 10


def test_an_import_that_is_still_beating_is_left_alone(
    mailing_list: MailingList, sent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    job = queued_import(mailing_list)
    job = imports.run(job.id, chunk_rows=4, max_chunks=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert job_recovery.recover().resumed_imports == 0

    assert sent["import"] == []
    lease = job.lease
    job.refresh_from_db()
    assert (job.status, job.lease, job.auto_resumes) == (ImportJob.Status.RUNNING, lease, 0)


def test_an_import_is_resumed_by_itself_only_so_often_then_waits_for_its_owner(
    mailing_list: MailingList, sent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    job = interrupted_import(mailing_list, auto_resumes=ImportJob.MAX_AUTO_RESUMES)

    with django_capture_on_commit_callbacks(execute=True):
        assert job_recovery.recover().resumed_imports == 0
    job.refresh_from_db()
    assert job.is_interrupted and sent["import"] == []

    # The owner's Resume button still works, and is not counted against the limit.
    with django_capture_on_commit_callbacks(execute=True):
        assert imports.resume(job)
    job.refresh_from_db()
    assert sent["import"] == [job.id]
    assert (job.status, job.auto_resumes) == (ImportJob.Status.QUEUED, ImportJob.MAX_AUTO_RESUMES)


def test_a_failed_import_is_not_resumed_by_itself(
    mailing_list: MailingList, sent, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    job = interrupted_import(mailing_list)
    ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.FAILED, error="unreadable")

    with django_capture_on_commit_callbacks(execute=True):
        assert job_recovery.recover().resumed_imports == 0

    assert sent["import"] == []
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED


def test_the_progress_says_whether_the_import_resumes_by_itself(
    owner_client, mailing_list: MailingList
) -> None:  # noqa: ANN001
    job = interrupted_import(mailing_list)
    url = reverse("lists:import-progress", args=[job.uuid])

    page = owner_client.get(url).content.decode()
    assert "Interrupted" in page and "It resumes by itself" in page

    ImportJob.objects.filter(id=job.id).update(auto_resumes=ImportJob.MAX_AUTO_RESUMES)
    page = owner_client.get(url).content.decode()
    assert "It resumes by itself" not in page
    assert "resumed 3 times by itself" in page and ">Resume</button>" in page


# --- Lost task messages -----------------------------------------------------------------


def test_a_queued_import_whose_message_was_lost_runs_after_recovery(
    mailing_list: MailingList, celery_eager
) -> None:  # noqa: ANN001
    job = queued_import(mailing_list)
    age(job, job_recovery.REPUBLISH_AFTER + timedelta(seconds=1))

    assert job_recovery.recover() == job_recovery.Recovered(resumed_imports=0, republished=1)

    job.refresh_from_db()
    assert (job.status, job.imported) == (ImportJob.Status.DONE, 10)


def test_a_message_is_sent_again_only_after_the_job_waited_long_enough_and_once_a_round(
    mailing_list: MailingList, sent
) -> None:  # noqa: ANN001
    job = queued_import(mailing_list)
    assert job.queued_at is not None
    # Uploaded long ago but started just now: it waits from its start, not its upload.
    ImportJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(days=1))
    assert job_recovery.recover().republished == 0

    age(job, job_recovery.REPUBLISH_AFTER + timedelta(seconds=1))
    assert job_recovery.recover().republished == 1
    # A second beat straight after (two beats by mistake) sends nothing more.
    assert job_recovery.recover().republished == 0
    assert sent["import"] == [job.id]
    # Still not taken another round later: it is sent again.
    age(job, job_recovery.REPUBLISH_AFTER + timedelta(seconds=1))
    assert job_recovery.recover().republished == 1
    assert sent["import"] == [job.id, job.id]


def test_a_job_that_is_not_queued_is_never_sent_again(mailing_list: MailingList, sent) -> None:
    running = interrupted_import(mailing_list, auto_resumes=ImportJob.MAX_AUTO_RESUMES)
    done = queued_import(mailing_list)
    imports.run(done.id)
    for job in (running, done):
        age(job, timedelta(days=1))

    assert job_recovery.recover().republished == 0
    assert sent == {"import": [], "export": [], "bulk": []}
    running.refresh_from_db()
    assert running.status == ImportJob.Status.RUNNING


def test_a_lost_export_and_a_lost_bulk_action_run_after_recovery(
    owner, mailing_list: MailingList, celery_eager
) -> None:  # noqa: ANN001
    for i in range(3):
        SubscriptionFactory(
            mailing_list=mailing_list,
            subscriber=SubscriberFactory(account=owner, email=f"b{i}@example.org"),
            status="confirmed",
        )
    subscriptions.recount([mailing_list.id])
    # Created outside a captured commit: their messages are never sent, as if lost.
    export = exports.start_list_export(mailing_list, owner, {})
    action = bulk.create_job("unsubscribe", mailing_list, actor=owner, filter_params={})
    for job in (export, action):
        age(job, job_recovery.REPUBLISH_AFTER + timedelta(seconds=1))

    assert job_recovery.recover().republished == 2

    export.refresh_from_db()
    action.refresh_from_db()
    assert (export.status, export.rows_written) == (ExportJob.Status.DONE, 3)
    assert (action.status, action.done) == (BulkJob.Status.DONE, 3)


# --- Through a real worker ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_lost_import_message_sent_again_is_run_by_a_real_worker(
    celery_worker_process, owner
) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    job = queued_import(mailing_list)
    age(job, job_recovery.REPUBLISH_AFTER + timedelta(seconds=1))

    assert job_recovery.recover().republished == 1

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == ImportJob.Status.DONE:
            break
        time.sleep(0.2)
    assert (job.status, job.imported) == (ImportJob.Status.DONE, 10)
