"""An import's chunks written on two connections at once and committed in file order."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from django.core.files import File

from lists import import_turns, imports
from lists.models import ImportJob, ImportReject, Subscriber, Subscription
from tests.factories import CustomFieldFactory, MailingListFactory, UserFactory


def test_chunks_commit_in_order_even_when_a_later_one_is_written_first() -> None:
    # Chunk 0's write waits until chunk 1 has done its own: chunk 1 must still wait for
    # its turn, and the caller hears of both in file order.
    chunk_1_written = threading.Event()
    log: list[str] = []

    def write(n: int, wait_for_turn) -> int:  # noqa: ANN001
        if n == 0:
            assert chunk_1_written.wait(5)
        log.append(f"wrote {n}")
        if n == 1:
            chunk_1_written.set()
        wait_for_turn()
        log.append(f"committed {n}")
        return n

    told: list[int] = []
    finished = import_turns.write_in_turn(iter(range(4)), write, told.append)

    assert finished
    assert told == [0, 1, 2, 3]
    commits = [entry for entry in log if entry.startswith("committed")]
    assert commits == ["committed 0", "committed 1", "committed 2", "committed 3"]
    assert log.index("wrote 1") < log.index("wrote 0")  # the two really overlapped


def test_a_failed_chunk_calls_off_the_one_behind_it_and_its_error_is_raised() -> None:
    chunk_1_waiting = threading.Event()
    committed: list[int] = []

    def write(n: int, wait_for_turn) -> int:  # noqa: ANN001
        if n == 0:
            assert chunk_1_waiting.wait(5)
            raise RuntimeError("chunk 0 broke")
        chunk_1_waiting.set()
        wait_for_turn()  # raises: chunk 0 failed
        committed.append(n)
        return n

    with pytest.raises(RuntimeError, match="chunk 0 broke"):
        import_turns.write_in_turn(iter(range(5)), write, lambda n: None)
    assert committed == []


def test_a_chunk_failing_while_the_one_ahead_is_written_lets_that_one_commit() -> None:
    # Chunk 1 fails while chunk 0 is still writing: chunk 0 is ahead of the failure and
    # commits; the error raised is chunk 1's own, not a called-off turn.
    chunk_1_failed = threading.Event()
    committed: list[int] = []

    def write(n: int, wait_for_turn) -> int:  # noqa: ANN001
        if n == 1:
            chunk_1_failed.set()
            raise RuntimeError("chunk 1 broke")
        if n == 0:
            assert chunk_1_failed.wait(5)
        wait_for_turn()
        committed.append(n)
        return n

    told: list[int] = []
    with pytest.raises(RuntimeError, match="chunk 1 broke"):
        import_turns.write_in_turn(iter(range(5)), write, told.append)
    assert committed == [0]
    assert told == [0]


def _committing(committed: list[int]):  # noqa: ANN202
    """A chunk writer that only takes its turn and notes its commit."""

    def write(n: int, wait_for_turn) -> int:  # noqa: ANN001
        wait_for_turn()
        committed.append(n)
        return n

    return write


def test_a_failing_chunk_source_lets_the_chunks_ahead_of_it_commit() -> None:
    def chunks():  # noqa: ANN202
        yield from range(3)
        raise ValueError("line 61: unreadable file")

    committed: list[int] = []
    told: list[int] = []
    with pytest.raises(ValueError, match="unreadable"):
        import_turns.write_in_turn(chunks(), _committing(committed), told.append)
    assert committed == [0, 1, 2]
    assert told == [0, 1, 2]


def test_max_chunks_stops_after_that_many_commits() -> None:
    committed: list[int] = []
    finished = import_turns.write_in_turn(
        iter(range(10)), _committing(committed), lambda n: None, 3
    )
    assert finished is False
    assert committed == [0, 1, 2]


# On PostgreSQL, outside a test transaction (the writers' connections must see the job).


def _file(rows: int) -> bytes:
    lines = ["email,name,city"]
    lines += [f"reader{i}@example{i % 7}.org,Reader {i},Town {i % 3}" for i in range(rows)]
    lines.insert(5, "not an address,Nobody,Nowhere")  # one rejected row, early
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _job(data: bytes) -> ImportJob:
    owner = UserFactory()
    CustomFieldFactory(account=owner, key="city", label="City", type="text")
    mailing_list = MailingListFactory(owner=owner)
    job = imports.create_job(mailing_list, owner, File(io.BytesIO(data), name="people.csv"))
    imports.start(
        job, job.mapping, ImportJob.Mode.CONFIRMED, ImportJob.Existing.UPDATE, enqueue=False
    )
    return job


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_on_two_connections_imports_every_row_once_in_order(media) -> None:  # noqa: ANN001
    job = _job(_file(300))
    assert import_turns.usable()
    offsets: list[int] = []

    job = imports.run(job.id, chunk_rows=23, progress=lambda j: offsets.append(j.resume_offset))

    assert job.status == ImportJob.Status.DONE
    assert (job.rows_read, job.imported, job.rejected) == (301, 300, 1)
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets) == 14
    assert Subscription.objects.filter(mailing_list=job.mailing_list).count() == 300
    assert Subscriber.objects.get(email="reader42@example0.org").fields == {"city": "Town 0"}
    job.mailing_list.refresh_from_db()
    assert job.mailing_list.confirmed_count == 300
    assert list(ImportReject.objects.filter(job=job).values_list("line", flat=True)) == [6]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_interrupted_import_on_two_connections_resumes_without_gaps_or_doubles(
    media, celery_eager
) -> None:  # noqa: ANN001
    job = _job(_file(200))

    stopped = imports.run(job.id, chunk_rows=17, max_chunks=5)
    assert stopped.status == ImportJob.Status.RUNNING
    assert stopped.rows_read == 5 * 17
    assert Subscription.objects.filter(mailing_list=job.mailing_list).count() == 5 * 17 - 1

    # Its worker went silent; the resumed run (the task, here in this process) finishes it.
    ImportJob.objects.filter(id=job.id).update(
        heartbeat_at=stopped.heartbeat_at - ImportJob.STALE_AFTER * 2
    )
    assert imports.resume(stopped)
    job.refresh_from_db()

    assert (job.status, job.rows_read, job.imported, job.rejected) == ("done", 201, 200, 1)
    assert Subscription.objects.filter(mailing_list=job.mailing_list).count() == 200
    job.mailing_list.refresh_from_db()
    assert job.mailing_list.confirmed_count == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_chunk_failing_on_two_connections_keeps_only_the_chunks_ahead_of_it(
    media, monkeypatch, celery_eager
) -> None:  # noqa: ANN001
    job = _job(_file(120))
    real_write = imports._write_postgres
    calls = {"n": 0}
    lock = threading.Lock()

    def write_failing_third(job: ImportJob, chunk):  # noqa: ANN001, ANN202
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 3:
            raise RuntimeError("disk full")
        return real_write(job, chunk)

    monkeypatch.setattr(imports, "_write_postgres", write_failing_third)
    with pytest.raises(RuntimeError, match="disk full"):
        imports.run(job.id, chunk_rows=10)

    job.refresh_from_db()
    # Two chunks committed (one held the rejected row); the chunk behind the failed one,
    # written at the same time on the other connection, rolled back.
    assert job.rows_read == 20
    assert Subscription.objects.filter(mailing_list=job.mailing_list).count() == 19
    job.mailing_list.refresh_from_db()
    assert job.mailing_list.confirmed_count == 19

    monkeypatch.setattr(imports, "_write_postgres", real_write)
    ImportJob.objects.filter(id=job.id).update(
        heartbeat_at=job.heartbeat_at - ImportJob.STALE_AFTER * 2
    )
    assert imports.resume(job)
    job.refresh_from_db()
    assert (job.status, job.rows_read, job.imported, job.rejected) == ("done", 121, 120, 1)
    assert Subscription.objects.filter(mailing_list=job.mailing_list).count() == 120
