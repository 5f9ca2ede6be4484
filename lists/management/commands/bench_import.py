"""Benchmark the CSV import: a generated file through the same code path as the panel.

Prints progress lines, then as its last line one JSON object with rows, seconds,
rows_per_second and peak_rss_mb.
"""

from __future__ import annotations

import json
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from lists import imports
from lists.models import CustomField, ImportJob, MailingList, Subscriber, Subscription

CITIES = ["Berlin", "Lyon", "Porto", "Graz", "Turku", "Ghent", "Brno", "Cork"]


class Command(BaseCommand):
    help = "Imports a generated CSV of --rows subscribers and reports the speed as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--keep", action="store_true", help="keep the account and its data")

    def handle(self, *args: object, rows: int, keep: bool, **options: object) -> None:
        tag = uuid.uuid4().hex[:8]
        user = get_user_model().objects.create(username=f"bench-import-{tag}")
        mailing_list = MailingList.objects.create(owner=user, name=f"Import benchmark {tag}")
        CustomField.objects.create(account=user, key="city", label="City", type="text")
        CustomField.objects.create(account=user, key="score", label="Score", type="number")
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "bench.csv"
                started = time.monotonic()
                _generate(path, rows)
                self.stdout.write(
                    f"generated {rows} rows ({path.stat().st_size // 2**20} MB) "
                    f"in {time.monotonic() - started:.1f}s"
                )
                with path.open("rb") as stream:
                    job = imports.create_job(mailing_list, user, File(stream, name="bench.csv"))
            result = self._run(job)
        finally:
            if not keep:
                self.stdout.write("removing the benchmark account")
                _remove(user)
        self.stdout.write(json.dumps(result))

    def _run(self, job: ImportJob) -> dict:
        imports.start(
            job, job.mapping, ImportJob.Mode.CONFIRMED, ImportJob.Existing.UPDATE, enqueue=False
        )
        started = time.monotonic()

        def progress(job: ImportJob) -> None:
            elapsed = time.monotonic() - started
            self.stdout.write(
                f"{elapsed:6.1f}s  read {job.rows_read}  imported {job.imported}  "
                f"rejected {job.rejected}  {job.rows_read / elapsed:,.0f} rows/s"
            )

        # In-process, the function lists.tasks.run_import calls.
        job = imports.run(job.id, progress=progress)
        seconds = time.monotonic() - started
        job.mailing_list.refresh_from_db()
        return {
            "rows": job.rows_read,
            "imported": job.imported,
            "rejected": job.rejected,
            "list_confirmed_count": job.mailing_list.confirmed_count,
            "seconds": round(seconds, 2),
            "rows_per_second": round(job.rows_read / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def _generate(path: Path, rows: int) -> None:
    """e-mail, name and two custom fields; written in blocks to keep memory flat."""
    rng = random.Random(7)  # noqa: S311 (test data)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,city,score\n")
        block = []
        for n in range(rows):
            block.append(
                f"reader{n}@example{n % 97}.org,Reader {n},{rng.choice(CITIES)},{n % 1000}\n"
            )
            if len(block) == 10_000:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))


def _remove(user: object) -> None:
    """Deletes the throw-away account; its million rows with set-based deletes first."""
    with transaction.atomic():
        for job in ImportJob.objects.filter(account=user):
            job.file.delete(save=False)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {Subscription._meta.db_table} WHERE mailing_list_id IN "  # noqa: S608
                f"(SELECT id FROM {MailingList._meta.db_table} WHERE owner_id = %s)",
                [user.pk],
            )
            cursor.execute(
                f"DELETE FROM {Subscriber._meta.db_table} WHERE account_id = %s",  # noqa: S608
                [user.pk],
            )
        user.delete()
