"""CSV import, through the domain functions the task and the panel call."""

from __future__ import annotations

import io
import re
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files import File
from django.utils import timezone

from lists import imports
from lists.models import ImportJob, ImportReject, MailingList, Subscriber, Subscription
from tests.factories import (
    BlocklistEntryFactory,
    CustomFieldFactory,
    MailingListFactory,
    SubscriberFactory,
    SubscriptionFactory,
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def mailing_list(owner) -> MailingList:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="city", label="City", type="text")
    CustomFieldFactory(account=owner, key="score", label="Score", type="number")
    return MailingListFactory(owner=owner)


def upload(mailing_list: MailingList, content: bytes | str, name: str = "people.csv") -> ImportJob:
    data = content.encode() if isinstance(content, str) else content
    return imports.create_job(mailing_list, mailing_list.owner, File(io.BytesIO(data), name=name))


def import_file(
    mailing_list: MailingList,
    content: bytes | str,
    *,
    mode: str = ImportJob.Mode.CONFIRMED,
    existing: str = ImportJob.Existing.UPDATE,
    **run_options: object,
) -> ImportJob:
    job = upload(mailing_list, content)
    imports.start(job, job.mapping, mode, existing, enqueue=False)
    return imports.run(job.id, **run_options)


def rejects(job: ImportJob) -> list[tuple[int, str]]:
    return list(ImportReject.objects.filter(job=job).values_list("line", "reason"))


GOOD = """email,name,city,score
ann@example.org,Ann,Berlin,3
Bob@Example.ORG,Bob,,
carl@example.net,Carl,Lyon,7.5
"""


def test_a_good_file_imports_every_row_with_its_fields(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, GOOD)

    assert job.status == ImportJob.Status.DONE
    assert (job.rows_read, job.imported, job.updated, job.skipped, job.rejected) == (3, 3, 0, 0, 0)
    ann = Subscriber.objects.get(email="ann@example.org")
    assert (ann.name, ann.fields) == ("Ann", {"city": "Berlin", "score": 3})
    assert Subscriber.objects.get(name="Bob").email == "Bob@example.org"
    assert Subscriber.objects.get(name="Carl").fields == {"city": "Lyon", "score": 7.5}
    assert set(Subscription.objects.values_list("status", "source")) == {("confirmed", "import")}


def test_the_list_counts_are_right_after_the_import(mailing_list: MailingList) -> None:
    import_file(mailing_list, GOOD)

    mailing_list.refresh_from_db()
    assert (mailing_list.confirmed_count, mailing_list.pending_count) == (3, 0)


def test_pending_mode_creates_pending_subscriptions(mailing_list: MailingList) -> None:
    import_file(mailing_list, GOOD, mode=ImportJob.Mode.PENDING)

    mailing_list.refresh_from_db()
    assert (mailing_list.confirmed_count, mailing_list.pending_count) == (0, 3)
    assert not Subscription.objects.filter(confirmed_at__isnull=False).exists()


def test_each_kind_of_bad_row_is_reported_and_the_rest_imported(
    mailing_list: MailingList,
) -> None:
    BlocklistEntryFactory(account=mailing_list.owner, kind="address", value="blocked@example.org")
    BlocklistEntryFactory(account=None, kind="domain", value="spam.test")
    content = """email,name,city,score
ann@example.org,Ann,Berlin,1
not-an-address,Nobody,,
Blocked@example.org,Blocked,,
someone@spam.test,Spammer,,
ANN@example.org,Ann again,,
dora@example.org,Dora,,lots
eve@example.org,Eve,,2
"""
    job = import_file(mailing_list, content)

    assert dict(rejects(job)) == {
        3: "invalid address: the address has no '@' or nothing before it",
        4: "blocked: the address is on the blocklist",
        5: "blocked: the domain is on the blocklist",
        6: "duplicate in the file",
        7: "bad field value: Score: 'lots' is not a number",
    }
    assert (job.rows_read, job.imported, job.rejected) == (7, 2, 5)
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "ann@example.org",
        "eve@example.org",
    }
    assert ImportReject.objects.get(job=job, line=7).raw == "dora@example.org,Dora,,lots"


def test_a_latin1_file_is_read_as_latin1(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, "email,name\njörg@example.org,Jörg Müller\n".encode("latin-1"))

    assert job.encoding == "latin-1"
    subscriber = Subscriber.objects.get()
    assert (subscriber.email, subscriber.name) == ("jörg@example.org", "Jörg Müller")


def _long_file(late_line: bytes, *, early: bytes = b"") -> bytes:
    """Over 64 KB of ASCII rows (plus ``early``), then ``late_line``: past the sniffed sample."""
    rows = b"".join(b"person%d@example.org,Person %d\n" % (n, n) for n in range(3000))
    content = b"email,name\n" + early + rows + late_line + b"last@example.org,Last\n"
    assert len(content) > 100 * 1024
    return content


def test_a_latin1_file_whose_first_accent_is_late_is_read_as_latin1(
    mailing_list: MailingList,
) -> None:
    job = import_file(mailing_list, _long_file("jörg@example.org,Jörg Müller\n".encode("latin-1")))

    assert (job.status, job.rejected, job.imported) == (ImportJob.Status.DONE, 0, 3002)
    assert Subscriber.objects.get(name__startswith="J").name == "Jörg Müller"
    assert job.encoding == "latin-1"


def test_a_late_utf8_file_still_reports_its_one_bad_line(mailing_list: MailingList) -> None:
    # The first accented line (after the sample) is UTF-8: a later Latin-1 line is an error.
    good = "zoë@example.org,Zoë\n".encode()
    content = _long_file(good + "jörg@example.org,Jörg\n".encode("latin-1"))
    job = import_file(mailing_list, content)

    assert job.encoding == "utf-8"
    assert Subscriber.objects.get(email="zoë@example.org").name == "Zoë"
    assert [reason for _, reason in rejects(job)] == [
        "unreadable row: the line is not valid UTF-8 text"
    ]


def test_a_utf8_file_proven_in_its_sample_reports_a_late_bad_line(
    mailing_list: MailingList,
) -> None:
    content = _long_file(
        "jörg@example.org,Jörg\n".encode("latin-1"), early="zoë@x.org,Zoë\n".encode()
    )
    job = import_file(mailing_list, content)

    assert job.encoding == "utf-8"
    assert job.rejected == 1 and not Subscriber.objects.filter(name="Jörg").exists()


def test_a_resumed_import_keeps_the_encoding_found_late(mailing_list: MailingList) -> None:
    content = _long_file("jörg@example.org,Jörg Müller\n".encode("latin-1"))
    content += "éva@example.org,Éva\n".encode("latin-1")
    job = import_file(mailing_list, content, chunk_rows=3001, max_chunks=1)
    job.refresh_from_db()
    assert job.encoding == "latin-1"  # saved with the chunk that found it

    ImportJob.objects.filter(id=job.id).update(heartbeat_at=job.heartbeat_at - job.STALE_AFTER * 2)
    assert imports.resume(job)
    job = imports.run(job.id)
    assert (job.rejected, job.imported) == (0, 3003)
    assert Subscriber.objects.get(email="éva@example.org").name == "Éva"


def test_a_file_with_a_bom_keeps_its_header(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, "\ufeffemail,name\nann@example.org,Ann\n".encode())

    assert job.mapping == {"0": "email", "1": "name"}
    assert (job.imported, job.rejected) == (1, 0)
    assert Subscriber.objects.get().name == "Ann"


def test_a_semicolon_file_is_split_on_semicolons(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, "E-Mail;Name;City\nann@example.org;Ann, the first;Graz\n")

    assert job.delimiter == ";"
    assert job.mapping == {"0": "email", "1": "name", "2": "field:city"}
    ann = Subscriber.objects.get()
    assert (ann.name, ann.fields) == ("Ann, the first", {"city": "Graz"})


def test_a_file_without_an_email_column_is_refused_and_nothing_imported(
    mailing_list: MailingList,
) -> None:
    with pytest.raises(imports.ImportFileError, match="no column with e-mail addresses"):
        upload(mailing_list, "name,city\nAnn,Berlin\nBob,Lyon\n")

    assert not ImportJob.objects.exists()
    assert not Subscriber.objects.exists()


def test_a_100_mb_line_is_rejected_without_reading_it_into_memory(
    mailing_list: MailingList, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as out:
        out.write(b"email,name\nann@example.org,Ann\nbig@example.org,")
        block = b"x" * 2**20
        for _ in range(100):
            out.write(block)
        out.write(b"\ncarl@example.org,Carl\n")
    with path.open("rb") as stream:
        job = imports.create_job(mailing_list, mailing_list.owner, File(stream, name="huge.csv"))
    imports.start(
        job, job.mapping, ImportJob.Mode.CONFIRMED, ImportJob.Existing.UPDATE, enqueue=False
    )

    tracemalloc.start()
    try:
        job = imports.run(job.id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 20 * 2**20
    assert rejects(job) == [(3, "unreadable row: the line is longer than 64 KB")]
    assert len(ImportReject.objects.get(job=job).raw) <= 500
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "ann@example.org",
        "carl@example.org",
    }
    assert (job.rows_read, job.imported, job.rejected) == (3, 2, 1)


def test_importing_the_same_file_twice_changes_nothing(mailing_list: MailingList) -> None:
    import_file(mailing_list, GOOD)
    before = list(
        Subscriber.objects.order_by("id").values_list("id", "name", "fields", "updated_at")
    )

    second = import_file(mailing_list, GOOD)

    assert (second.imported, second.updated, second.skipped, second.rejected) == (0, 0, 3, 0)
    after = list(
        Subscriber.objects.order_by("id").values_list("id", "name", "fields", "updated_at")
    )
    assert after == before
    assert Subscription.objects.count() == 3
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 3


@pytest.fixture
def existing(mailing_list: MailingList) -> Subscriber:
    subscriber = SubscriberFactory(
        account=mailing_list.owner,
        email="ann@example.org",
        name="Old Ann",
        fields={"city": "Rome", "score": 1},
    )
    SubscriptionFactory(mailing_list=mailing_list, subscriber=subscriber, status="confirmed")
    return subscriber


CHANGE = "email,name,city\nann@example.org,New Ann,\n"


@pytest.mark.parametrize(
    ("choice", "name", "fields", "counted"),
    [
        # Update fills in what the file has and keeps the rest (an empty cell erases nothing).
        ("update", "New Ann", {"city": "Rome", "score": 1}, "updated"),
        # Overwrite replaces name and fields with the file's values.
        ("overwrite", "New Ann", {}, "updated"),
        ("skip", "Old Ann", {"city": "Rome", "score": 1}, "skipped"),
    ],
)
def test_existing_subscribers_are_updated_overwritten_or_left_alone(
    mailing_list: MailingList,
    existing: Subscriber,
    choice: str,
    name: str,
    fields: dict,
    counted: str,
) -> None:
    job = import_file(mailing_list, CHANGE, existing=choice)

    existing.refresh_from_db()
    assert (existing.name, existing.fields) == (name, fields)
    assert getattr(job, counted) == 1
    assert job.imported == 0


def test_an_existing_subscriber_new_to_the_list_is_imported_and_updated(
    mailing_list: MailingList, existing: Subscriber
) -> None:
    other = MailingListFactory(owner=mailing_list.owner)

    job = import_file(other, CHANGE)

    assert job.imported == 1
    assert Subscriber.objects.count() == 1
    existing.refresh_from_db()
    assert existing.name == "New Ann"
    assert Subscription.objects.filter(mailing_list=other, subscriber=existing).exists()


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained"])
def test_an_import_never_resubscribes_anyone(
    mailing_list: MailingList, existing: Subscriber, status: str
) -> None:
    Subscription.objects.filter(subscriber=existing).update(status=status)

    job = import_file(mailing_list, "email,name\nann@example.org,Ann\nbob@example.org,Bob\n")

    assert Subscription.objects.get(subscriber=existing).status == status
    assert (job.imported, job.skipped) == (1, 1)
    [(line, reason)] = rejects(job)
    assert line == 2
    assert reason.startswith("skipped:")
    existing.refresh_from_db()
    assert existing.name == "Old Ann"  # nor touches their data


def test_another_accounts_subscriber_is_not_touched(mailing_list: MailingList, stranger) -> None:  # noqa: ANN001
    theirs = SubscriberFactory(account=stranger, email="ann@example.org", name="Theirs")

    import_file(mailing_list, CHANGE)

    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert Subscriber.objects.filter(account=mailing_list.owner, email="ann@example.org").exists()


ROWS = (
    "email,name\n" + "".join(f"p{n}@example.org,P{n}\n" for n in range(9)) + "p1@example.org,Dup\n"
)


def test_an_interrupted_import_resumes_after_its_last_chunk(mailing_list: MailingList) -> None:
    # Chunks of 4 rows; stop after 2 chunks as if the worker had been killed.
    job = import_file(mailing_list, ROWS, chunk_rows=4, max_chunks=2)
    assert job.status == ImportJob.Status.RUNNING
    assert (job.rows_read, job.imported, job.resume_line) == (8, 8, 9)
    assert not job.is_interrupted
    assert not imports.resume(job)  # its heartbeat is fresh: not resumable yet

    ImportJob.objects.filter(id=job.id).update(heartbeat_at=job.heartbeat_at - job.STALE_AFTER * 2)
    job.refresh_from_db()
    assert job.is_interrupted
    assert imports.resume(job)
    job = imports.run(job.id, chunk_rows=4)

    assert job.status == ImportJob.Status.DONE
    assert (job.rows_read, job.imported, job.rejected) == (10, 9, 1)
    # The duplicate of a row from before the interruption is still recognised.
    assert rejects(job) == [(11, "duplicate in the file")]
    assert Subscription.objects.filter(mailing_list=mailing_list).count() == 9
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 9


def make_stale(job: ImportJob) -> None:
    """As if the job's worker had gone silent for longer than STALE_AFTER."""
    ImportJob.objects.filter(id=job.id).update(
        heartbeat_at=timezone.now() - ImportJob.STALE_AFTER * 2
    )


def test_a_resumed_job_stops_the_run_it_took_over_and_the_counts_stay_right(
    mailing_list: MailingList,
) -> None:
    # The first run stalls after one chunk (it looks dead) and the job is resumed; the
    # second run finishes it. When the first one wakes up it must write nothing more.
    job = upload(mailing_list, ROWS)
    imports.start(job, job.mapping, ImportJob.Mode.CONFIRMED, ImportJob.Existing.UPDATE,
                  enqueue=False)  # fmt: skip
    second: list[ImportJob | None] = []

    def stall_then_resume(first: ImportJob) -> None:
        if second:
            return
        make_stale(first)
        assert imports.resume(first)
        second.append(imports.run(first.id, chunk_rows=4))

    first = imports.run(job.id, chunk_rows=4, progress=stall_then_resume)

    assert first is None  # it noticed at its next chunk and stopped
    (finished,) = second
    assert finished.status == ImportJob.Status.DONE
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (job.rows_read, job.imported, job.rejected, job.skipped) == (10, 9, 1, 0)
    assert rejects(job) == [(11, "duplicate in the file")]
    assert Subscription.objects.filter(mailing_list=mailing_list).count() == 9
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 9


def test_each_run_claims_the_job_with_a_lease_of_its_own(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, ROWS, chunk_rows=4, max_chunks=1)
    first_lease = job.lease
    assert first_lease is not None

    make_stale(job)
    assert imports.resume(job)
    job.refresh_from_db()
    assert job.lease is None and job.status == ImportJob.Status.QUEUED
    job = imports.run(job.id, chunk_rows=4, max_chunks=1)

    assert job.lease not in (None, first_lease)
    assert imports.run(job.id) is None  # running: nobody else claims it


def test_a_stale_runs_heartbeat_stops_it(mailing_list: MailingList, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(imports, "HEARTBEAT_SECONDS", 0)
    job = import_file(mailing_list, ROWS, chunk_rows=4, max_chunks=1)
    lease = imports.Lease(job.id, job.lease)
    before = job.heartbeat_at

    lease.beat()
    job.refresh_from_db()
    assert job.heartbeat_at > before

    make_stale(job)
    assert imports.resume(job)
    with pytest.raises(imports.LeaseLost):
        lease.beat()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.QUEUED  # the stale run changed nothing


def test_a_run_beats_while_it_waits_for_a_slow_chunk(monkeypatch) -> None:  # noqa: ANN001
    # Parsing the next chunk takes longer than the heartbeat interval: the run must
    # tell it is alive meanwhile, not only when a chunk commits.
    monkeypatch.setattr(imports, "HEARTBEAT_SECONDS", 0.05)
    beats: list[float] = []

    def slow_chunks():  # noqa: ANN202
        time.sleep(0.5)
        yield imports.Chunk(read=1)

    chunks = list(imports._ahead(slow_chunks(), lambda: beats.append(time.monotonic())))

    assert [chunk.read for chunk in chunks] == [1]
    assert len(beats) >= 3


def test_a_job_runs_once_even_if_its_task_arrives_twice(mailing_list: MailingList) -> None:
    job = import_file(mailing_list, GOOD)

    assert imports.run(job.id) is None
    job.refresh_from_db()
    assert job.rows_read == 3


def test_pending_mode_mails_each_new_subscriber_a_confirmation_one_task_per_chunk(
    mailing_list: MailingList, celery_eager, django_capture_on_commit_callbacks, mailoutbox
) -> None:  # noqa: ANN001
    from lists import signup

    SubscriptionFactory(
        mailing_list=mailing_list, subscriber__account=mailing_list.owner,
        subscriber__email="carl@example.net", status="confirmed",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        import_file(mailing_list, GOOD, mode=ImportJob.Mode.PENDING, chunk_rows=2)

    # One task for the first chunk's two new subscriptions; none for the second
    # chunk, whose only row (Carl) was on the list already.
    assert len(callbacks) == 1
    assert sorted(m.to[0] for m in mailoutbox) == ["Bob@example.org", "ann@example.org"]
    ann = next(m for m in mailoutbox if m.to == ["ann@example.org"])
    token = re.search(r"/s/confirm/([^/\s\"]+)/", ann.body).group(1)
    signup.confirm(token, ip="192.0.2.1", user_agent="test")
    assert dict(
        Subscription.objects.filter(mailing_list=mailing_list).values_list(
            "subscriber__email", "status"
        )
    ) == {
        "ann@example.org": "confirmed",
        "Bob@example.org": "pending",
        "carl@example.net": "confirmed",
    }


def test_a_confirmation_task_run_twice_mails_nobody_twice(
    mailing_list: MailingList, django_capture_on_commit_callbacks, mailoutbox
) -> None:  # noqa: ANN001
    import_file(mailing_list, GOOD, mode=ImportJob.Mode.PENDING)
    ids = list(Subscription.objects.values_list("id", flat=True))

    assert imports.send_confirmations(ids) == 3
    assert imports.send_confirmations(ids) == 0
    assert len(mailoutbox) == 3


def test_confirmed_mode_mails_nobody(
    mailing_list: MailingList, celery_eager, django_capture_on_commit_callbacks, mailoutbox
) -> None:  # noqa: ANN001
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        import_file(mailing_list, GOOD)

    assert callbacks == [] and mailoutbox == []


def test_imported_subscriptions_never_confirmed_expire(mailing_list: MailingList, settings) -> None:  # noqa: ANN001
    from lists import tasks

    import_file(mailing_list, GOOD, mode=ImportJob.Mode.PENDING)
    kept = SubscriptionFactory(
        mailing_list=mailing_list, subscriber__account=mailing_list.owner, status="confirmed",
        source="import",
    )  # fmt: skip
    old = timezone.now() - timedelta(days=settings.PENDING_EXPIRY_DAYS + 1)
    Subscription.objects.update(status_changed_at=old)
    # Mailed recently: its link is still valid, so it stays.
    recent = Subscription.objects.get(subscriber__email="ann@example.org")
    Subscription.objects.filter(id=recent.id).update(confirmation_sent_at=timezone.now())

    assert tasks.expire_pending_subscriptions() == 2

    assert set(Subscription.objects.values_list("id", flat=True)) == {recent.id, kept.id}
    assert Subscriber.objects.filter(email="Bob@example.org").exists()  # the owner's data stays
    mailing_list.refresh_from_db()
    assert mailing_list.pending_count == 1


@pytest.mark.parametrize(
    ("mode", "counter"), [("confirmed", "confirmed_count"), ("pending", "pending_count")]
)
def test_the_list_counts_are_right_after_every_chunk_without_counting_the_list(
    mailing_list: MailingList, mode: str, counter: str
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    SubscriptionFactory(mailing_list=mailing_list, subscriber__account=mailing_list.owner,
                        subscriber__email="p2@example.org", status="unsubscribed")  # fmt: skip
    MailingList.objects.filter(id=mailing_list.id).update(unsubscribed_count=1)
    seen = []

    def progress(job: ImportJob) -> None:
        mailing_list.refresh_from_db()
        seen.append((job.imported, getattr(mailing_list, counter), mailing_list.unsubscribed_count))

    # Stops after two chunks, as a killed worker would.
    with CaptureQueriesContext(connection) as queries:
        import_file(mailing_list, ROWS, mode=mode, chunk_rows=4, max_chunks=2, progress=progress)

    # p2 was unsubscribed: skipped, and its count is untouched.
    assert seen == [(3, 3, 1), (7, 7, 1)]
    counts = [q["sql"] for q in queries.captured_queries if "count(" in q["sql"].lower()]
    assert not [sql for sql in counts if Subscription._meta.db_table in sql]
