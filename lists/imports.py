"""CSV import: upload, column mapping, and the streaming bulk import a worker runs.

The flow: :func:`create_job` stores the upload and sniffs it; the owner maps
columns and :func:`start` queues ``lists.tasks.run_import``; :func:`run` streams
the file in chunks. Each chunk is validated in Python (address, duplicate in the
file, custom field values, then the blocklist in one query per chunk) and written
in bulk (COPY into a temp table and INSERT ... ON CONFLICT on PostgreSQL, bulk_create
elsewhere), together with its rejects, the job's counters and the byte offset
reached, in one transaction. A killed worker therefore leaves a job that resumes
exactly after its last committed chunk (:func:`resume`).

An import never changes the status of an existing subscription: someone who
unsubscribed, bounced or complained stays so (the row is counted as skipped, with
its reason in the report). Pending mode creates pending subscriptions and, after
each chunk commits, queues one task with the chunk's new pending subscriptions; it
mails each subscriber the same double opt-in confirmation a signup form sends
(:func:`send_confirmations`). Imported subscriptions never confirmed expire like
every pending subscription (lists.subscriptions.expire_pending).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from smtplib import SMTPRecipientsRefused
from typing import BinaryIO, NamedTuple

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from lists import addresses, csvfiles, import_turns, planner, subscriptions
from lists.models import (
    BlocklistEntry,
    CustomField,
    ImportJob,
    ImportReject,
    MailingList,
    Subscriber,
    Subscription,
    SuppressedAddress,
)

logger = logging.getLogger(__name__)

Status = ImportJob.Status
CHUNK_ROWS = 20_000
STALE_AFTER = ImportJob.STALE_AFTER
INACTIVE = {
    Subscription.Status.UNSUBSCRIBED: "skipped: unsubscribed from this list earlier",
    Subscription.Status.BOUNCED: "skipped: this address bounced on this list",
    Subscription.Status.COMPLAINED: "skipped: this address complained (marked as spam)",
}
EMAIL_HEADERS = {"email", "e-mail", "mail", "emailaddress", "email address", "e-mail address"}
NAME_HEADERS = {"name", "full name", "fullname", "display name"}


class ImportFileError(ValueError):
    """The file cannot be imported at all; the message says why."""


# --- Upload and mapping -------------------------------------------------------------------


def create_job(mailing_list: MailingList, user: object, upload: File) -> ImportJob:
    """Stores an uploaded file as a job waiting for its column mapping.

    Raises ImportFileError (and keeps nothing) when the file is empty or has no
    column with e-mail addresses.
    """
    job = ImportJob(
        account_id=mailing_list.owner_id,
        mailing_list=mailing_list,
        created_by=user,
        original_name=(upload.name or "upload.csv")[-255:],
    )
    job.file.save(job.original_name.rsplit("/", 1)[-1], upload, save=False)
    try:
        with job.file.open("rb") as stream:
            dialect = csvfiles.sniff(stream.read(csvfiles.SAMPLE_BYTES))
            records = csvfiles.preview(stream, dialect)
        rows = [r.cells for r in records if r.cells]
        if not rows:
            raise ImportFileError("The file is empty: there is no row to import.")
        if _email_column(rows) is None:
            raise ImportFileError(
                "The file has no column with e-mail addresses, so there is nothing to import. "
                "Add a column with one address per row (a header such as “email” helps)."
            )
    except ImportFileError:
        job.file.delete(save=False)
        raise
    job.encoding, job.delimiter = dialect.encoding, dialect.delimiter
    # The first row is a header unless it already holds an address; a header is
    # skipped by starting the import after it.
    first = records[0]
    if _looks_like_header(first.cells):
        job.resume_offset, job.resume_line = first.end_offset, first.end_line
    else:
        job.resume_offset, job.resume_line = dialect.data_start, 0
    job.mapping = guess_mapping(first.cells, rows, _fields_of(mailing_list))
    job.save()
    return job


def _fields_of(mailing_list: MailingList) -> list[CustomField]:
    return list(CustomField.objects.filter(account_id=mailing_list.owner_id))


def _looks_like_header(cells: list[str]) -> bool:
    return not any(addresses.is_valid(cell) for cell in cells)


def _email_column(rows: list[list[str]]) -> int | None:
    """The first column holding an address in any preview row, or named like one."""
    for row in rows:
        for index, cell in enumerate(row):
            if addresses.is_valid(cell):
                return index
    for index, cell in enumerate(rows[0]):
        if cell.strip().lower() in EMAIL_HEADERS:
            return index
    return None


def guess_mapping(
    header: list[str], rows: list[list[str]], fields: list[CustomField]
) -> dict[str, str]:
    """Column index (as a string) -> "email" / "name" / "field:<key>" / "" (ignored)."""
    by_name = {}
    for custom in fields:
        by_name[custom.key.lower()] = f"field:{custom.key}"
        by_name[custom.label.strip().lower()] = f"field:{custom.key}"
    mapping: dict[str, str] = {}
    has_header = _looks_like_header(header)
    for index, cell in enumerate(header if has_header else []):
        title = cell.strip().lower()
        if title in EMAIL_HEADERS:
            mapping[str(index)] = "email"
        elif title in NAME_HEADERS:
            mapping[str(index)] = "name"
        elif title in by_name:
            mapping[str(index)] = by_name[title]
    if "email" not in mapping.values():
        column = _email_column(rows)
        if column is not None:
            mapping[str(column)] = "email"
    width = max(len(row) for row in rows)
    return {str(i): mapping.get(str(i), "") for i in range(width)}


def describe(job: ImportJob, rows: int = 6) -> tuple[list[str], list[list[str]]]:
    """The header (or empty) and the first data rows of an uploaded file, for the preview."""
    dialect = csvfiles.Dialect(job.encoding, job.delimiter)
    with job.file.open("rb") as stream:
        records = [r for r in csvfiles.preview(stream, dialect, rows + 1) if r.cells]
    if records and _looks_like_header(records[0].cells):
        return records[0].cells, [r.cells for r in records[1 : rows + 1]]
    return [], [r.cells for r in records[:rows]]


def start(
    job: ImportJob, mapping: dict[str, str], mode: str, existing: str, *, enqueue: bool = True
) -> None:
    """Saves the mapping and choices and queues the import after commit.

    ``enqueue=False`` leaves the queued job for an in-process :func:`run` (benchmark).

    Raises ImportFileError when no column (or more than one) is mapped to e-mail.
    """
    emails = [column for column, target in mapping.items() if target == "email"]
    if len(emails) != 1:
        raise ImportFileError("Choose exactly one column that holds the e-mail addresses.")
    from lists import tasks

    with transaction.atomic():
        updated = ImportJob.objects.filter(id=job.id, status=Status.UPLOADED).update(
            mapping=mapping,
            mode=mode,
            existing=existing,
            status=Status.QUEUED,
            queued_at=timezone.now(),
        )
        if updated and enqueue:
            transaction.on_commit(lambda: tasks.run_import.delay(job.id))
    job.refresh_from_db()


def is_interrupted(job: ImportJob) -> bool:
    """A running job whose worker stopped sending heartbeats."""
    return job.is_interrupted


def _interrupted() -> Q:
    """Running, but silent for STALE_AFTER: its worker died (ImportJob.is_interrupted)."""
    return Q(status=Status.RUNNING, heartbeat_at__lt=timezone.now() - STALE_AFTER)


def resumable_by_itself() -> Q:
    """Interrupted jobs that lists.job_recovery may still resume on its own."""
    return _interrupted() & Q(auto_resumes__lt=ImportJob.MAX_AUTO_RESUMES)


def resume(job: ImportJob, *, automatic: bool = False) -> bool:
    """Queues an interrupted or failed job again; it continues after its last chunk.

    Returns False when the job is not resumable (still alive, done, or not started).
    The job's lease is cleared with it: should the old run still be alive after all
    (stalled, not dead), its next heartbeat or chunk finds the job no longer its own
    and it stops, its unfinished chunk rolled back; the new run takes a lease of its own.

    ``automatic`` is lists.job_recovery resuming a job whose worker died: only an
    interrupted job (a failed one failed for a reason a new run would meet again), and
    only ImportJob.MAX_AUTO_RESUMES times, so a file that kills its worker every time is
    left for the owner to look at instead of killing workers forever.
    """
    from lists import tasks

    if automatic:
        resumable = resumable_by_itself()
        counted = {"auto_resumes": F("auto_resumes") + 1}
    else:
        resumable = Q(status=Status.FAILED) | _interrupted()
        counted = {}
    with transaction.atomic():
        updated = (
            ImportJob.objects.filter(id=job.id)
            .filter(resumable)
            .update(
                status=Status.QUEUED,
                error="",
                finished_at=None,
                lease=None,
                queued_at=timezone.now(),
                **counted,
            )
        )
        if updated:
            transaction.on_commit(lambda: tasks.run_import.delay(job.id))
    return bool(updated)


# --- The import run -----------------------------------------------------------------------

# How often a run tells that it is alive, well inside ImportJob.STALE_AFTER. Between and
# during chunks: while the next chunk is parsed, and while a resumed run re-reads the part
# of the file done before. A chunk's own write (one transaction of a few seconds) is the
# longest silence.
HEARTBEAT_SECONDS = 5.0


class LeaseLost(Exception):
    """The job is no longer this run's: it was resumed into another run."""


class Lease:
    """A run's claim on its job: the token it claimed the job with, and its heartbeats.

    Every write a run makes to its job row is conditional on the token (a conditional
    UPDATE), so a run whose job was resumed elsewhere writes nothing more: the UPDATE
    matches no row and LeaseLost is raised, rolling back the chunk being written.
    """

    def __init__(self, job_id: int, token: uuid.UUID) -> None:
        self.job_id = job_id
        self.token = token
        self.last_beat = time.monotonic()

    def update(self, **values: object) -> None:
        """Writes the values and a heartbeat; raises LeaseLost if the job is not ours."""
        mine = ImportJob.objects.filter(id=self.job_id, lease=self.token)
        if not mine.update(heartbeat_at=timezone.now(), **values):
            raise LeaseLost(f"import {self.job_id} was resumed by another run")
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        """A heartbeat if the last one is HEARTBEAT_SECONDS old; cheap to call often."""
        if time.monotonic() - self.last_beat >= HEARTBEAT_SECONDS:
            self.update()


class Row(NamedTuple):
    line: int
    email: str
    key: str
    domain: str
    name: str
    fields: dict


@dataclass
class Chunk:
    rows: list[Row] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    raw: dict[int, str] = field(default_factory=dict)
    read: int = 0
    end_offset: int = 0
    end_line: int = 0
    # The file's encoding as known after the chunk's last record (csvfiles.UNPROVEN).
    encoding: str = ""


@dataclass
class Plan:
    """The compiled mapping: where each value is, and the fields to validate."""

    email: int
    name: int | None
    fields: list[tuple[int, CustomField]]

    @classmethod
    def of(cls, job: ImportJob) -> Plan:
        defined = {f.key: f for f in CustomField.objects.filter(account_id=job.account_id)}
        email, name, fields = None, None, []
        for column, target in sorted(job.mapping.items(), key=lambda item: int(item[0])):
            if target == "email":
                email = int(column)
            elif target == "name":
                name = int(column)
            elif target.startswith("field:") and target[6:] in defined:
                fields.append((int(column), defined[target[6:]]))
        if email is None:
            raise ImportFileError("No column is mapped to the e-mail address.")
        return cls(email, name, fields)


def run(
    job_id: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
    max_chunks: int | None = None,
    progress: Callable[[ImportJob], None] | None = None,
) -> ImportJob | None:
    """Claims a queued job with a new lease and imports its file from where it stopped.

    Returns the job, or None when this run does not own it: it was not queued
    (another worker has it, or it is finished), or it was resumed into another run
    meanwhile (see :class:`Lease`; this run then stops at its next heartbeat or
    chunk). ``max_chunks`` stops after that many chunks and leaves the job running,
    as a killed worker would (for tests). A file that cannot be read marks the job
    failed with the reason; committed chunks stay.
    """
    now = timezone.now()
    lease = Lease(job_id, uuid.uuid4())
    claimed = ImportJob.objects.filter(id=job_id, status=Status.QUEUED).update(
        status=Status.RUNNING, heartbeat_at=now, lease=lease.token
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("mailing_list").get(id=job_id)
    try:
        if job.started_at is None:
            job.started_at = now
            lease.update(started_at=now)
        if _import(job, lease, chunk_rows, max_chunks, progress):
            _finish(job, lease)
    except LeaseLost:
        logger.info("import %s was resumed by another run; this run stops", job_id)
        return None
    except (ImportFileError, OSError, UnicodeError) as exc:
        logger.warning("import %s failed: %s", job.id, exc)
        try:
            lease.update(status=Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now())
        except LeaseLost:
            return None
    job.refresh_from_db()
    return job


def _finish(job: ImportJob, lease: Lease) -> None:
    # No recount: every chunk counted its own new subscriptions as it committed.
    job.refresh_from_db(fields=["imported", "updated"])
    planner.refresh_after_bulk_write(job.imported + job.updated)
    _queue_search_index_upkeep(job.imported + job.updated)
    lease.update(status=Status.DONE, finished_at=timezone.now())


def _import(
    job: ImportJob,
    lease: Lease,
    chunk_rows: int,
    max_chunks: int | None,
    progress: Callable[[ImportJob], None] | None,
) -> bool:
    """Runs the chunks; True when the end of the file was reached. Raises LeaseLost."""
    plan = Plan.of(job)
    dialect = csvfiles.Dialect(job.encoding, job.delimiter)
    blocked_for = _blocklist_loader(job.account_id)
    drop_erased = _erased_dropper(job.account_id)
    write = _write_postgres if connection.vendor == "postgresql" else _write_orm
    with job.file.open("rb") as stream:
        seen = _seen_before(stream, dialect, plan, job.resume_offset, lease.beat)
        records = csvfiles.read_records(
            stream, dialect, offset=job.resume_offset, line=job.resume_line
        )
        # Closed before the file is: the parsing thread stops first, whatever ends the run.
        ahead = contextlib.closing(_ahead(_chunks(records, plan, seen, chunk_rows), lease.beat))
        with ahead as chunks:

            def commit(chunk: Chunk, wait_for_turn: Callable[[], None]) -> None:
                _drop_blocked(chunk, blocked_for)
                drop_erased(chunk)
                with transaction.atomic():
                    counts = write(job, chunk)
                    # The rows above are the chunk's own; what follows is shared with the
                    # other chunks (the job's row, the list's counts): one chunk at a time.
                    wait_for_turn()
                    # Raises LeaseLost, rolling the chunk back, if another run owns the job.
                    _save_progress(job, chunk, counts, lease)
                    _queue_confirmations(counts.pending_ids)
                    # Last: it locks the list's row until COMMIT (concurrent signups wait).
                    _count_new_subscriptions(job, counts.imported)

            def committed(_: None) -> None:
                # A fresh copy: the writer threads are still reading ``job``.
                if progress is not None:
                    progress(ImportJob.objects.get(pk=job.pk))

            if import_turns.usable():
                return import_turns.write_in_turn(chunks, commit, committed, max_chunks)
            for done, chunk in enumerate(chunks, start=1):
                commit(chunk, lambda: None)
                committed(None)
                if max_chunks is not None and done >= max_chunks:
                    return False
    return True


def _ahead(chunks: Iterator[Chunk], waiting_beat: Callable[[], None]) -> Iterator[Chunk]:
    """Validates the next chunk in a thread while the database writes this one.

    Parsing is Python and writing is PostgreSQL: overlapping them uses both cores.
    The thread touches only the file, never the database connection. At most two
    chunks wait, so memory stays bounded. While the consumer waits for a chunk it
    calls ``waiting_beat`` every few seconds (the run's heartbeat, on its connection).
    """
    waiting: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        waiting.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            waiting.put(end)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            waiting.put(exc)

    thread = threading.Thread(target=produce, name="import-parse", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = waiting.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                waiting_beat()
                continue
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting to hand over its last item
                waiting.get(timeout=0.3)
        thread.join(timeout=5)


def _queue_search_index_upkeep(rows: int) -> None:
    # The chunks left their rows in the search indexes' pending lists; merge them off the
    # import's path. If the broker is down, autovacuum merges them later all the same.
    if not rows or connection.vendor != "postgresql":
        return
    from lists import tasks

    try:
        tasks.clean_search_indexes.delay()
    except Exception:  # noqa: BLE001
        logger.warning("could not queue the search index upkeep after an import")


def _erased_dropper(account_id: int) -> Callable[[Chunk], None]:
    """Moves a chunk's addresses erased at the subscriber's request to its rejects.

    lists.preferences owns erasure (one query per chunk over the chunk's address hashes);
    an account that never erased anyone, the usual case, skips it with one query per import.
    """
    from lists.preferences import drop_erased

    if not SuppressedAddress.objects.filter(account_id=account_id).exists():
        return lambda chunk: None
    return lambda chunk: drop_erased(chunk, account_id)


def _seen_before(
    stream: BinaryIO, dialect: csvfiles.Dialect, plan: Plan, until: int, beat: Callable[[], None]
) -> set:
    """The duplicate detector, rebuilt from the part of the file a resumed job already read.

    It holds hash values, not addresses, to stay small (about 70 bytes per row);
    a collision of two 64-bit hashes in one file is not a practical concern. Calls
    ``beat`` as it goes: a large file takes a while to re-read.
    """
    seen: set[int] = set()
    if until <= dialect.data_start:
        return seen
    for count, record in enumerate(
        csvfiles.read_records(stream, dialect, offset=dialect.data_start)
    ):
        if count % 1000 == 0:
            beat()
        if record.end_offset > until:
            break
        if record.cells and len(record.cells) > plan.email:
            with contextlib.suppress(addresses.InvalidAddress):
                seen.add(hash(addresses.normalise(record.cells[plan.email]).lower()))
        if record.end_offset == until:
            break
    return seen


def _chunks(
    records: Iterator[csvfiles.Record], plan: Plan, seen: set[int], chunk_rows: int
) -> Iterator[Chunk]:
    """Validates records into chunks of rows to write and rows rejected with a reason."""
    normalise, invalid = _address_normaliser(), addresses.InvalidAddress
    clean = _field_cleaner(plan)
    name_at = plan.name
    chunk = Chunk()
    for record in records:
        chunk.read += 1
        chunk.end_offset, chunk.end_line = record.end_offset, record.end_line
        chunk.encoding = record.encoding
        line, cells = record.line, record.cells
        if record.error:
            chunk.rejects.append((line, f"unreadable row: {record.error}", record.raw))
        else:
            try:
                email = normalise(cells[plan.email] if len(cells) > plan.email else "")
            except invalid as exc:
                chunk.rejects.append((line, f"invalid address: {exc}", record.raw))
            else:
                key = email.lower()
                marker = hash(key)
                if marker in seen:
                    chunk.rejects.append((line, "duplicate in the file", record.raw))
                else:
                    seen.add(marker)
                    values, error = clean(cells)
                    if error:
                        chunk.rejects.append((line, f"bad field value: {error}", record.raw))
                    else:
                        name = ""
                        if name_at is not None and name_at < len(cells):
                            name = cells[name_at].strip()[:200]
                        domain = key.rpartition("@")[2]
                        chunk.rows.append(Row(line, email, key, domain, name, values))
                        chunk.raw[line] = record.raw
        if chunk.read >= chunk_rows:
            yield chunk
            chunk = Chunk()
    if chunk.read:
        yield chunk


# A strict subset of what lists.addresses accepts before the "@": plain ASCII.
SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")


def _address_normaliser() -> Callable[[str], str]:
    """addresses.normalise with the domain's normalisation remembered per domain.

    IDNA-encoding a domain is most of normalise's cost and a file has few distinct
    domains. A domain enters the cache only after the full rule accepted an
    address at it, and the shortcut only takes plain local parts, so it returns
    exactly what addresses.normalise would; anything else goes the full way.
    """
    full = addresses.normalise
    domains: dict[str, str] = {}
    simple = SIMPLE_LOCAL.fullmatch
    longest = addresses.MAX_LENGTH

    def normalise(address: str) -> str:
        address = address.strip()
        local, _, domain = address.rpartition("@")
        known = domains.get(domain)
        if known is not None and len(local) <= 64 and simple(local):
            result = f"{local}@{known}"
            if len(result) <= longest:
                return result
        result = full(address)
        if len(domains) < 100_000:
            domains[domain] = result.rpartition("@")[2]
        return result

    return normalise


def _field_cleaner(plan: Plan) -> Callable[[list[str]], tuple[dict, str]]:
    from lists.fields import clean_value

    fields = plan.fields

    def clean(cells: list[str]) -> tuple[dict, str]:
        values = {}
        for index, custom in fields:
            if index >= len(cells) or not cells[index]:
                continue
            try:
                value = clean_value(custom, cells[index])
            except ValidationError as exc:
                return {}, exc.messages[0]
            if value is not None:
                values[custom.key] = value
        return values, ""

    return clean


def _blocklist_loader(account_id: int) -> Callable[[set[str], set[str]], tuple[set, set]]:
    """Returns a function giving the blocked addresses and domains among a chunk's.

    One query per chunk, for the account's and the global entries together.
    """
    Kind = BlocklistEntry.Kind

    def blocked(keys: set[str], domains: set[str]) -> tuple[set, set]:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT kind, value FROM {BlocklistEntry._meta.db_table} "  # noqa: S608
                    "WHERE (account_id IS NULL OR account_id = %s) AND ("
                    "(kind = %s AND value = ANY(%s)) OR (kind = %s AND value = ANY(%s)))",
                    [account_id, Kind.ADDRESS, list(keys), Kind.DOMAIN, list(domains)],
                )
                found = cursor.fetchall()
        else:
            # SQLite limits the number of parameters: split the key list.
            key_list, found = list(keys), []
            for start in range(0, max(len(key_list), 1), 500):
                found += (
                    BlocklistEntry.objects.filter(
                        Q(account__isnull=True) | Q(account_id=account_id)
                    )
                    .filter(
                        Q(kind=Kind.ADDRESS, value__in=key_list[start : start + 500])
                        | Q(kind=Kind.DOMAIN, value__in=domains if start == 0 else [])
                    )
                    .values_list("kind", "value")
                )
        return (
            {value for kind, value in found if kind == Kind.ADDRESS},
            {value for kind, value in found if kind == Kind.DOMAIN},
        )

    return blocked


def _drop_blocked(chunk: Chunk, blocked_for: Callable) -> None:
    if not chunk.rows:
        return
    keys = {row.key for row in chunk.rows}
    domains = {row.domain for row in chunk.rows}
    blocked_keys, blocked_domains = blocked_for(keys, domains)
    if not blocked_keys and not blocked_domains:
        return
    kept = []
    for row in chunk.rows:
        if row.key in blocked_keys:
            reason = "blocked: the address is on the blocklist"
        elif row.domain in blocked_domains:
            reason = "blocked: the domain is on the blocklist"
        else:
            kept.append(row)
            continue
        chunk.rejects.append((row.line, reason, chunk.raw.get(row.line, "")))
    chunk.rows = kept


@dataclass
class Counts:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    # (line, reason) of rows skipped because of the subscription's status.
    inactive: list[tuple[int, str]] = field(default_factory=list)
    # Ids of the subscriptions this chunk created as pending (pending mode only).
    pending_ids: list[int] = field(default_factory=list)


def _save_progress(job: ImportJob, chunk: Chunk, counts: Counts, lease: Lease) -> None:
    """Rejects, counters, the resume point and the heartbeat: inside the chunk's transaction.

    Raises LeaseLost when the job is no longer the run's (the caller's transaction then
    rolls the whole chunk back). The job's row stays locked until COMMIT, so a resume
    waits for a chunk being committed, and a chunk being committed for a resume.
    """
    rejects = [
        ImportReject(job_id=job.id, line=line, reason=reason[:300], raw=raw[: csvfiles.RAW_KEEP])
        for line, reason, raw in chunk.rejects
    ]
    rejects += [
        ImportReject(job_id=job.id, line=line, reason=reason, raw=chunk.raw.get(line, ""))
        for line, reason in counts.inactive
    ]
    ImportReject.objects.bulk_create(rejects, batch_size=2000, ignore_conflicts=True)
    decided = {}
    if job.encoding == csvfiles.UNPROVEN and chunk.encoding not in ("", csvfiles.UNPROVEN):
        # A resumed run must read on in the encoding this run found (csvfiles.UNPROVEN).
        decided["encoding"] = chunk.encoding
    lease.update(
        **decided,
        rows_read=F("rows_read") + chunk.read,
        imported=F("imported") + counts.imported,
        updated=F("updated") + counts.updated,
        skipped=F("skipped") + counts.skipped,
        rejected=F("rejected") + len(chunk.rejects),
        resume_offset=chunk.end_offset,
        resume_line=chunk.end_line,
    )


def _count_new_subscriptions(job: ImportJob, imported: int) -> None:
    """Adds a chunk's new subscriptions to the list's counts: one UPDATE, no COUNT.

    An import only creates subscriptions (it never changes an existing one's status),
    so its new rows, all in one status, are the whole change. They go through
    subscriptions.count_added, which reads only the list and the status of what it
    is given: the same unsaved row ``imported`` times stands for them.
    """
    if imported:
        new = Subscription(mailing_list_id=job.mailing_list_id, status=_new_status(job))
        subscriptions.count_added(itertools.repeat(new, imported))


def _consent(job: ImportJob, now: object) -> dict:
    return {
        "source": "import",
        "import": str(job.uuid),
        "mode": job.mode,
        "at": now.isoformat(),
        "by": job.created_by_id,
    }


def _new_status(job: ImportJob) -> str:
    if job.mode == ImportJob.Mode.PENDING:
        return Subscription.Status.PENDING
    return Subscription.Status.CONFIRMED


# --- Writing a chunk: PostgreSQL ----------------------------------------------------------

PG_TEMP = """
DROP TABLE IF EXISTS import_chunk;
CREATE TEMP TABLE import_chunk (
    line integer, email text, email_key text, domain text, name text, fields jsonb,
    subscriber_id bigint, subscription_id bigint, new_subscriber boolean NOT NULL DEFAULT false,
    new_subscription boolean NOT NULL DEFAULT false, status text,
    changed boolean NOT NULL DEFAULT false
) ON COMMIT DROP
"""


def _write_postgres(job: ImportJob, chunk: Chunk) -> Counts:
    """COPY the chunk into a temp table, then set-based INSERT ... ON CONFLICT / UPDATE."""
    if not chunk.rows:
        return Counts()
    now = timezone.now()
    subscriber_table = Subscriber._meta.db_table
    subscription_table = Subscription._meta.db_table
    status = _new_status(job)
    dumps = json.dumps
    with connection.cursor() as cursor:
        planner.defer_search_index_upkeep(cursor)
        # The chunk's COMMIT does not wait for its WAL flush. Safe here: the job's progress
        # commits in the same transaction, so a server crash that loses the chunk loses
        # its progress too, and the resumed run writes it again.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(PG_TEMP)
        with cursor.cursor.copy(
            "COPY import_chunk (line, email, email_key, domain, name, fields) FROM STDIN"
        ) as copy:
            write_row = copy.write_row
            for row in chunk.rows:
                write_row((row.line, row.email, row.key, row.domain, row.name, dumps(row.fields)))
        # Without these the joins below against RETURNING results become nested
        # loops over the whole chunk (quadratic); with them each join is a lookup.
        cursor.execute(
            "CREATE INDEX ON import_chunk (email_key); "
            "CREATE INDEX ON import_chunk (subscriber_id); ANALYZE import_chunk"
        )
        # New subscribers. The conflict target is the unique index on
        # (lower(email), account_id); existing ones are looked up below.
        cursor.execute(
            f"""
            WITH ins AS (
                INSERT INTO {subscriber_table}
                    (uuid, account_id, email, domain, name, fields, consent, created_at, updated_at)
                SELECT gen_random_uuid(), %s, email, domain, name, fields, %s, %s, %s
                FROM import_chunk
                ON CONFLICT (lower(email), account_id) DO NOTHING
                RETURNING id, lower(email) AS email_key
            )
            UPDATE import_chunk t SET subscriber_id = ins.id, new_subscriber = true
            FROM ins WHERE t.email_key = ins.email_key
            """,  # noqa: S608
            [job.account_id, dumps(_consent(job, now)), now, now],
        )
        # ARRAY(...) makes the planner use the index per key instead of scanning
        # the whole account's subscribers.
        cursor.execute(
            f"""
            UPDATE import_chunk t SET subscriber_id = s.id
            FROM {subscriber_table} s
            WHERE t.subscriber_id IS NULL AND s.account_id = %s
              AND lower(s.email) = ANY(ARRAY(
                  SELECT email_key FROM import_chunk WHERE subscriber_id IS NULL))
              AND lower(s.email) = t.email_key
            """,  # noqa: S608
            [job.account_id],
        )
        confirmed_at = now if status == Subscription.Status.CONFIRMED else None
        cursor.execute(
            f"""
            WITH ins AS (
                INSERT INTO {subscription_table}
                    (mailing_list_id, subscriber_id, status, source, created_at,
                     status_changed_at, confirmed_at, unsubscribe_reason)
                SELECT %s, subscriber_id, %s, %s, %s, %s, %s, ''
                FROM import_chunk WHERE subscriber_id IS NOT NULL
                ON CONFLICT (mailing_list_id, subscriber_id) DO NOTHING
                RETURNING id, subscriber_id
            )
            UPDATE import_chunk t
            SET new_subscription = true, status = %s, subscription_id = ins.id
            FROM ins WHERE t.subscriber_id = ins.subscriber_id
            """,  # noqa: S608
            [
                job.mailing_list_id,
                status,
                Subscription.Source.IMPORT,
                now,
                now,
                confirmed_at,
                status,
            ],
        )
        cursor.execute(
            f"""
            UPDATE import_chunk t SET status = s.status
            FROM {subscription_table} s
            WHERE NOT t.new_subscription AND s.mailing_list_id = %s
              AND s.subscriber_id = ANY(ARRAY(
                  SELECT subscriber_id FROM import_chunk WHERE NOT new_subscription))
              AND s.subscriber_id = t.subscriber_id
            """,  # noqa: S608
            [job.mailing_list_id],
        )
        _update_existing_postgres(cursor, job, now)
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE new_subscription),
                   count(*) FILTER (WHERE NOT new_subscription AND changed)
            FROM import_chunk
            """
        )
        imported, updated = cursor.fetchone()
        cursor.execute(
            "SELECT line, status FROM import_chunk WHERE status = ANY(%s) ORDER BY line",
            [list(INACTIVE)],
        )
        inactive = [(line, INACTIVE[status]) for line, status in cursor.fetchall()]
        pending_ids = []
        if status == Subscription.Status.PENDING:
            cursor.execute("SELECT subscription_id FROM import_chunk WHERE new_subscription")
            pending_ids = [row[0] for row in cursor.fetchall()]
    skipped = len(chunk.rows) - imported - updated
    return Counts(imported, updated, skipped, inactive, pending_ids)


def _update_existing_postgres(cursor: object, job: ImportJob, now: object) -> None:
    """Applies the file's values to existing subscribers (not those skipped for status)."""
    if job.existing == ImportJob.Existing.SKIP:
        return
    has_name = "name" in job.mapping.values()
    if job.existing == ImportJob.Existing.OVERWRITE:
        name = "t.name" if has_name else "s.name"
        fields = "t.fields"
    else:
        name = "CASE WHEN t.name <> '' THEN t.name ELSE s.name END"
        fields = "s.fields || t.fields"
    subscriber_table = Subscriber._meta.db_table
    cursor.execute(
        f"""
        WITH upd AS (
            UPDATE {subscriber_table} s SET name = {name}, fields = {fields}, updated_at = %s
            FROM import_chunk t
            WHERE NOT t.new_subscriber
              AND (t.status IS NULL OR NOT t.status = ANY(%s))
              AND s.id = ANY(ARRAY(SELECT subscriber_id FROM import_chunk
                                   WHERE NOT new_subscriber))
              AND s.id = t.subscriber_id
              AND (s.name, s.fields) IS DISTINCT FROM ({name}, {fields})
            RETURNING s.id
        )
        UPDATE import_chunk t SET changed = true FROM upd WHERE t.subscriber_id = upd.id
        """,  # noqa: S608
        [now, list(INACTIVE)],
    )


# --- Writing a chunk: other databases (SQLite) --------------------------------------------


def _write_orm(job: ImportJob, chunk: Chunk) -> Counts:
    """The same rules as _write_postgres with the ORM, a few queries per 500 rows."""
    if not chunk.rows:
        return Counts()
    now = timezone.now()
    existing: dict[str, Subscriber] = {}
    keys = [row.key for row in chunk.rows]
    for start in range(0, len(keys), 500):
        for subscriber in (
            Subscriber.objects.filter(account_id=job.account_id)
            .annotate(email_key=Lower("email"))
            .filter(email_key__in=keys[start : start + 500])
        ):
            existing[subscriber.email_key] = subscriber
    consent = _consent(job, now)
    created = Subscriber.objects.bulk_create(
        [
            Subscriber(
                account_id=job.account_id,
                email=row.email,
                domain=row.domain,
                name=row.name,
                fields=row.fields,
                consent=consent,
            )
            for row in chunk.rows
            if row.key not in existing
        ],
        batch_size=500,
    )
    new_ids = {s.id for s in created}
    by_key = {**existing, **{s.email.lower(): s for s in created}}
    ids = [by_key[row.key].id for row in chunk.rows]
    statuses: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        statuses.update(
            Subscription.objects.filter(
                mailing_list_id=job.mailing_list_id, subscriber_id__in=ids[start : start + 500]
            ).values_list("subscriber_id", "status")
        )
    status = _new_status(job)
    confirmed_at = now if status == Subscription.Status.CONFIRMED else None
    added = Subscription.objects.bulk_create(
        [
            Subscription(
                mailing_list_id=job.mailing_list_id,
                subscriber_id=sid,
                status=status,
                source=Subscription.Source.IMPORT,
                confirmed_at=confirmed_at,
            )
            for sid in ids
            if sid not in statuses
        ],
        batch_size=500,
    )
    counts = Counts()
    if status == Subscription.Status.PENDING:
        counts.pending_ids = _ids_of(job, added)
    changed = []
    for row in chunk.rows:
        subscriber = by_key[row.key]
        old_status = statuses.get(subscriber.id)
        if old_status in INACTIVE:
            counts.skipped += 1
            counts.inactive.append((row.line, INACTIVE[old_status]))
            continue
        is_changed = subscriber.id not in new_ids and _apply(job, subscriber, row)
        if is_changed:
            changed.append(subscriber)
        if old_status is None:
            counts.imported += 1
        elif is_changed:
            counts.updated += 1
        else:
            counts.skipped += 1
    for subscriber in changed:
        subscriber.updated_at = now
    Subscriber.objects.bulk_update(changed, ["name", "fields", "updated_at"], batch_size=500)
    return counts


def _ids_of(job: ImportJob, added: list[Subscription]) -> list[int]:
    """The primary keys of bulk-created subscriptions (a database without RETURNING
    leaves them unset: look them up)."""
    if all(s.pk is not None for s in added):
        return [s.pk for s in added]
    found: list[int] = []
    subscriber_ids = [s.subscriber_id for s in added]
    for start in range(0, len(subscriber_ids), 500):
        found += Subscription.objects.filter(
            mailing_list_id=job.mailing_list_id,
            subscriber_id__in=subscriber_ids[start : start + 500],
        ).values_list("id", flat=True)
    return found


def _apply(job: ImportJob, subscriber: Subscriber, row: Row) -> bool:
    """Sets the file's values on an existing subscriber; True when anything changed."""
    if job.existing == ImportJob.Existing.SKIP:
        return False
    if job.existing == ImportJob.Existing.OVERWRITE:
        has_name = "name" in job.mapping.values()
        name = row.name if has_name else subscriber.name
        fields = dict(row.fields)
    else:
        name = row.name or subscriber.name
        fields = {**subscriber.fields, **row.fields}
    if name == subscriber.name and fields == subscriber.fields:
        return False
    subscriber.name, subscriber.fields = name, fields
    return True


# --- Confirmation mails of pending imports ------------------------------------------------


def _queue_confirmations(subscription_ids: list[int]) -> None:
    """Queues one task for a chunk's new pending subscriptions, once the chunk commits.

    robust: a broker that is down must not fail the import after its chunk committed;
    the subscriptions stay pending and unmailed (confirmation_sent_at empty), and expire.
    """
    if not subscription_ids:
        return
    from lists import tasks

    ids = list(subscription_ids)
    transaction.on_commit(lambda: tasks.send_import_confirmations.delay(ids), robust=True)


def send_confirmations(subscription_ids: list[int]) -> int:
    """Mails each still-pending imported subscription its own confirmation; returns how many.

    The mail is the one signup forms send (lists.confirmation), one per subscriber:
    a confirmation link must name one person's subscriptions only. Each subscription
    is claimed first (confirmation_sent_at set while empty), so a task delivered twice,
    or retried after a transient SMTP error, mails nobody twice. A failed send gives
    its claim back and re-raises for the task's retry; a refused recipient is logged
    and not retried, and the others are still mailed.
    """
    from lists import confirmation

    sent = 0
    for subscription_id in subscription_ids:
        claimed = Subscription.objects.filter(
            id=subscription_id,
            status=Subscription.Status.PENDING,
            confirmation_sent_at__isnull=True,
        ).update(confirmation_sent_at=timezone.now())
        if not claimed:
            continue
        try:
            sent += confirmation.send_confirmation([subscription_id], None)
        except SMTPRecipientsRefused:
            logger.warning("confirmation of imported subscription %s refused", subscription_id)
        except BaseException:
            Subscription.objects.filter(id=subscription_id).update(confirmation_sent_at=None)
            raise
    return sent
