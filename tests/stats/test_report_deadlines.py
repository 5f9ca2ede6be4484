"""A failure report always ends: a part that fails for good fails it, a report whose parts
stop moving is re-queued once and then failed, and a failed report can be run again."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, connections
from django.urls import reverse

from mailpanel.celery import app
from stats import reports, tasks
from stats.models import FailureReport
from tests.factories import UserFactory
from tests.stats.test_failure_report import fill_log, last_30_days

RUNNING, DONE, FAILED = (
    FailureReport.Status.RUNNING,
    FailureReport.Status.DONE,
    FailureReport.Status.FAILED,
)


@contextmanager
def locked_by_another_session(table: str, wait: str = "200ms") -> Iterator[None]:
    """``table`` held in ACCESS EXCLUSIVE mode by another connection (as a migration or a
    partition detach would), while this connection gives up on a lock after ``wait``."""
    other = connections.create_connection("default")
    other.set_autocommit(False)
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{wait}'")
    try:
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


@pytest.fixture
def logged(owner) -> None:  # noqa: ANN001
    """Failures in the log, so a report has parts to count."""
    fill_log(owner, UserFactory(username="otto"), count=300)


def request(owner: object, parts: int = 3) -> FailureReport:
    start, end = last_30_days()
    return reports.request_report(
        account=owner, requested_by=owner, start=start, end=end, parts=parts
    )


# --- A part that fails for good -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_part_failing_after_its_retries_fails_the_report_and_it_can_run_again(
    client, celery_eager
) -> None:  # noqa: ANN001
    owner, other = UserFactory(username="freya"), UserFactory(username="fritz")
    fill_log(owner, other, count=400)
    # The merge reads the relays' names; their table stays locked through every retry.
    with locked_by_another_session("sending_relay"):
        report = request(owner, parts=2)
    report.refresh_from_db()
    assert report.status == FAILED
    assert "could not be counted" in report.error and "lock timeout" in report.error
    assert report.result == {} and report.finished_at is not None
    # A late copy of a part changes nothing once the report has ended.
    assert reports.run_part(report.parts.first().id) is False
    assert FailureReport.objects.get(id=report.id).status == FAILED

    client.force_login(owner)
    page = client.get(reverse("stats:report-detail", args=[report.uuid])).content.decode()
    assert "Failed" in page and "lock timeout" in page
    assert "hx-get" not in page  # the page stops polling
    rerun = reverse("stats:report-rerun", args=[report.uuid])
    assert f'action="{rerun}"' in page
    response = client.post(rerun)
    again = FailureReport.objects.exclude(id=report.id).get()
    assert response["Location"] == reverse("stats:report-detail", args=[again.uuid])
    assert (again.status, again.period_start, again.account) == (DONE, report.period_start, owner)
    assert reports.matches_single_query(again)


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_a_stranger_cannot_run_someone_elses_report_again(client, owner, stranger) -> None:  # noqa: ANN001
    report = request(owner)
    assert reports.fail(report.id, "Broken.")
    url = reverse("stats:report-rerun", args=[report.uuid])
    client.force_login(stranger)
    assert client.post(url).status_code == 404
    client.force_login(owner)
    assert client.post(url).status_code == 302
    assert FailureReport.objects.filter(account=owner).count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_a_running_report_is_not_run_again(client, owner) -> None:  # noqa: ANN001
    report = request(owner)
    client.force_login(owner)
    response = client.post(reverse("stats:report-rerun", args=[report.uuid]), follow=True)
    assert "still being counted" in response.content.decode()
    assert FailureReport.objects.count() == 1


# --- Parts that never run ------------------------------------------------------------------
# Outside a committed transaction the parts' messages are never sent: they are lost.


def later(report: FailureReport, minutes: int) -> datetime.datetime:
    return report.created_at + datetime.timedelta(minutes=minutes)


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_lost_parts_are_queued_again_once_and_then_count(
    owner, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    report = request(owner)
    assert reports.enforce_deadline(report.id, now=later(report, 5)) == ""
    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert reports.enforce_deadline(report.id, now=later(report, 11)) == "requeued"
    assert len(queued) == 3
    report.refresh_from_db()
    assert report.status == DONE and reports.matches_single_query(report)


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_parts_lost_twice_fail_the_report(owner, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    report = request(owner)
    reports.run_part(report.parts.first().id)  # one part counts, then nothing moves
    report.refresh_from_db()
    assert reports.enforce_deadline(report.id, now=report.progressed_at) == ""
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert reports.enforce_deadline(report.id, now=later(report, 11)) == "requeued"
    assert len(queued) == 2  # only the unfinished parts, and their messages are lost again
    assert reports.enforce_deadline(report.id, now=later(report, 15)) == ""
    assert reports.enforce_deadline(report.id, now=later(report, 22)) == "failed"
    report.refresh_from_db()
    assert report.status == FAILED
    assert report.error.startswith("2 of its 3 parts did not finish")
    assert reports.enforce_deadline(report.id, now=later(report, 40)) == ""


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_a_report_waiting_behind_another_ones_parts_is_not_stalled(owner) -> None:  # noqa: ANN001
    waiting, busy = request(owner), request(owner)
    now = later(waiting, 30)
    FailureReport.objects.filter(id=busy.id).update(
        progressed_at=now - datetime.timedelta(minutes=1)
    )
    assert reports.enforce_deadline(waiting.id, now=now) == ""
    FailureReport.objects.filter(id=busy.id).update(progressed_at=now - datetime.timedelta(hours=1))
    assert reports.enforce_deadline(waiting.id, now=now) == "requeued"


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_the_beat_task_ends_every_stalled_report(owner, celery_eager) -> None:  # noqa: ANN001
    stalled, fresh = request(owner), request(owner)
    hour_ago = fresh.created_at - datetime.timedelta(hours=1)
    FailureReport.objects.filter(id=stalled.id).update(created_at=hour_ago, requeued_at=hour_ago)
    tasks.enforce_report_deadlines.delay()
    statuses = dict(FailureReport.objects.values_list("id", "status"))
    assert statuses == {stalled.id: FAILED, fresh.id: RUNNING}


def test_the_watchdog_does_not_queue_behind_the_parts_it_watches() -> None:
    route = app.amqp.router.route
    assert route({}, "stats.tasks.run_failure_report_part")["queue"].name == "stats"
    assert route({}, "stats.tasks.enforce_report_deadlines")["queue"].name == "default"


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_the_progress_poll_ends_a_stalled_report(client, owner) -> None:  # noqa: ANN001
    report = request(owner)
    url = reverse("stats:report-progress", args=[report.uuid])
    client.force_login(owner)
    assert "parts done" in client.get(url).content.decode()
    hour_ago = report.created_at - datetime.timedelta(hours=1)
    FailureReport.objects.filter(id=report.id).update(created_at=hour_ago)
    page = client.get(url).content.decode()
    assert "hx-get" in page  # queued again: still running
    assert FailureReport.objects.get(id=report.id).requeued_at is not None
    FailureReport.objects.filter(id=report.id).update(requeued_at=hour_ago)
    page = client.get(url).content.decode()
    assert "hx-get" not in page and "Failed" in page and "did not finish" in page
    assert "Run it again" in page


@pytest.mark.django_db
@pytest.mark.usefixtures("logged")
def test_a_report_counted_but_never_merged_is_merged_when_stalled(
    owner, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    report = request(owner, parts=2)
    parts = list(report.parts.all())
    for part in parts:  # counted, and the worker died before the merge
        counts = reports.count_part(report, part.first_event_id, part.last_event_id)
        reports._mark_done(part, counts)
    report.refresh_from_db()
    assert (report.status, report.parts_done) == (RUNNING, 2)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert reports.enforce_deadline(report.id, now=later(report, 11)) == "requeued"
    assert len(queued) == 1
    report.refresh_from_db()
    assert report.status == DONE and reports.matches_single_query(report)
