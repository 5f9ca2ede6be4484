"""The failure report: split into parts, counted by tasks, merged by the last part, and equal
to what one query over the whole period answers."""

from __future__ import annotations

import datetime
import random
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from sending.models import Relay
from stats import reports
from stats.models import FailureReport, FailureReportPart, TrackingEvent
from tests.factories import SubscriberFactory, UserFactory

DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "web.de", "orange.fr", "tiny.example"]
KINDS = ["sent"] * 5 + ["opened"] * 3 + ["failed", "bounced", "bounced", "delivered"]


def fill_log(account: object, other: object, count: int = 1500, seed: int = 7) -> tuple:
    """Events over the last 40 days in time order, a fifth of them another account's."""
    rng = random.Random(seed)
    relays = [Relay.objects.create(name=f"relay-{i}", host=f"smtp{i}.example") for i in range(3)]
    subscribers = [SubscriberFactory(account=account) for _ in range(12)]
    start = timezone.now() - datetime.timedelta(days=40)
    events = []
    for i in range(count):
        theirs = rng.random() < 0.2
        events.append(
            TrackingEvent(
                occurred_at=start + datetime.timedelta(minutes=38 * i),
                kind=rng.choice(KINDS),
                account_id=(other if theirs else account).id,
                recipient_domain=rng.choice(DOMAINS),
                relay_id=rng.choice([r.id for r in relays] + [None]),
                subscriber_id=rng.choice([s.id for s in subscribers]),
            )
        )
    TrackingEvent.objects.bulk_create(events, batch_size=500)
    return relays, subscribers


def last_30_days() -> tuple[datetime.datetime, datetime.datetime]:
    end = timezone.now() - datetime.timedelta(days=2)
    return end - datetime.timedelta(days=30), end


@pytest.fixture
def other(db):  # noqa: ANN001, ANN201
    return UserFactory(username="otto")


def test_split_covers_the_range_once_in_contiguous_parts() -> None:
    ranges = reports.split(10, 109, 7)
    assert ranges[0][0] == 10 and ranges[-1][1] == 109
    assert all(b + 1 == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False))
    assert sum(b - a + 1 for a, b in ranges) == 100
    assert reports.split(5, 6, 10) == [(5, 5), (6, 6)]


@pytest.mark.django_db
def test_id_bounds_enclose_every_event_of_the_period(owner, other) -> None:  # noqa: ANN001
    fill_log(owner, other, count=400)
    start, end = last_30_days()
    first, last = reports.id_bounds(start, end)
    inside = TrackingEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    ids = list(inside.values_list("id", flat=True))
    assert first <= min(ids) and max(ids) <= last
    # Only the late-arrival margin around the period is read on top.
    assert TrackingEvent.objects.filter(id__gte=first, id__lte=last).count() < len(ids) + 40
    assert (
        reports.id_bounds(
            start - datetime.timedelta(days=400), start - datetime.timedelta(days=300)
        )
        is None
    )


@pytest.mark.django_db
def test_merged_parts_equal_a_single_query_answer(
    owner, other, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    fill_log(owner, other)
    start, end = last_30_days()
    with django_capture_on_commit_callbacks(execute=True):
        report = reports.request_report(
            account=owner, requested_by=owner, start=start, end=end, parts=5
        )
    report.refresh_from_db()
    assert report.status == FailureReport.Status.DONE
    assert (report.parts_total, report.parts_done) == (5, 5)
    assert reports.matches_single_query(report)
    # And by hand: the domain totals of the owner's failures in the period.
    events = TrackingEvent.objects.filter(
        account_id=owner.id,
        kind__in=["failed", "bounced"],
        occurred_at__gte=start,
        occurred_at__lt=end,
    )
    expected = {d: events.filter(recipient_domain=d).count() for d in DOMAINS}
    got = {row.key: row.total for row in reports.rows(report, "domains")}
    assert got == {d: n for d, n in expected.items() if n}
    assert report.result["failed"] + report.result["bounced"] == events.count()


@pytest.mark.django_db
def test_every_account_report_counts_everyone_and_single_account_one_does_not(
    owner, other, operator, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    fill_log(owner, other)
    start, end = last_30_days()
    with django_capture_on_commit_callbacks(execute=True):
        everything = reports.request_report(
            account=None, requested_by=operator, start=start, end=end, parts=3
        )
        mine = reports.request_report(
            account=owner, requested_by=owner, start=start, end=end, parts=3
        )
    everything.refresh_from_db()
    mine.refresh_from_db()
    assert reports.matches_single_query(everything)
    total = everything.result["failed"] + everything.result["bounced"]
    assert total > mine.result["failed"] + mine.result["bounced"]


@pytest.mark.django_db
def test_a_part_run_twice_counts_once_and_the_merge_happens_once(owner, other) -> None:  # noqa: ANN001
    fill_log(owner, other, count=600)
    start, end = last_30_days()
    report = reports.request_report(
        account=owner, requested_by=owner, start=start, end=end, parts=3
    )
    parts = list(report.parts.order_by("first_event_id"))
    assert reports.run_part(parts[0].id) is True
    assert reports.run_part(parts[0].id) is False
    report.refresh_from_db()
    assert (report.parts_done, report.status) == (1, FailureReport.Status.RUNNING)
    reports.run_part(parts[1].id)
    reports.run_part(parts[2].id)
    report.refresh_from_db()
    assert report.status == FailureReport.Status.DONE and report.parts_done == 3
    finished = report.finished_at
    assert reports.merge_if_complete(report.id) is False
    report.refresh_from_db()
    assert report.finished_at == finished
    assert reports.matches_single_query(report)


@pytest.mark.django_db
def test_an_empty_period_is_done_at_once(owner) -> None:  # noqa: ANN001
    start, end = last_30_days()
    report = reports.request_report(account=owner, requested_by=owner, start=start, end=end)
    assert report.status == FailureReport.Status.DONE
    assert report.parts_total == 0
    assert report.result["failed"] == 0


# --- The pages -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requesting_a_report_shows_progress_then_tables(
    client, owner, other, stranger, celery_eager
) -> None:  # noqa: ANN001, E501
    fill_log(owner, other, count=300)
    client.force_login(owner)
    today = timezone.localdate()
    response = client.post(
        reverse("stats:report-index"),
        {"start": (today - datetime.timedelta(days=45)).isoformat(), "end": today.isoformat()},
    )
    assert response.status_code == 302
    report = FailureReport.objects.get()
    assert report.account == owner  # not an operator: their account only
    page = client.get(response["Location"]).content.decode()
    assert 'hx-get="' in page and "parts done" in page
    for part in report.parts.all():
        reports.run_part(part.id)
    page = client.get(response["Location"]).content.decode()
    assert "hx-get" not in page
    assert "Receiving domains" in page and "gmail.com" in page
    client.force_login(stranger)
    assert client.get(response["Location"]).status_code == 404
    assert client.get(reverse("stats:report-progress", args=[report.uuid])).status_code == 404


@pytest.mark.django_db
def test_only_operators_may_count_every_account(client, owner, operator) -> None:  # noqa: ANN001
    today = timezone.localdate().isoformat()
    for user in (owner, operator):
        client.force_login(user)
        client.post(
            reverse("stats:report-index"), {"start": today, "end": today, "everything": "on"}
        )
    scopes = dict(FailureReport.objects.values_list("requested_by__username", "account__username"))
    assert scopes == {"olivia": "olivia", "opal": None}
    client.force_login(owner)
    everyone = FailureReport.objects.get(account__isnull=True)
    assert client.get(reverse("stats:report-detail", args=[everyone.uuid])).status_code == 404


# --- A real worker ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_parts_counted_by_a_real_worker_merge_to_the_single_query_answer(
    celery_worker_process,
) -> None:  # noqa: ANN001, E501
    owner, other = UserFactory(username="wendy"), UserFactory(username="walt")
    fill_log(owner, other, count=900)
    start, end = last_30_days()
    report = reports.request_report(
        account=owner, requested_by=owner, start=start, end=end, parts=4
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status != FailureReport.Status.RUNNING:
            break
        time.sleep(0.2)
    assert report.status == FailureReport.Status.DONE, celery_worker_process.output()[-3000:]
    assert FailureReportPart.objects.filter(report=report, done=True).count() == 4
    assert reports.matches_single_query(report)
