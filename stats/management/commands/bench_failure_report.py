"""Times the failure report over N generated events, counted by real Celery workers.

    python manage.py bench_failure_report --events 10000000 [--parts N] [--workers 2]
                                          [--use-running-workers]

Fills the log (COPY on PostgreSQL), starts ``celery -A mailpanel worker -Q stats -c W``
unless told to use the workers already running, requests an every-account report over
the last 30 days, waits for it, compares it with a single-query answer, deletes what it
made, and prints one JSON object as the last line.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stats import dashboard_bench


class Command(BaseCommand):
    help = "Times the failure report through real workers and checks it against one query."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=10_000_000)
        parser.add_argument("--parts", type=int, default=None)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--use-running-workers", action="store_true")
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args: object, events: int, parts: int | None, workers: int,
               use_running_workers: bool, timeout: float, **options: object) -> None:  # fmt: skip
        if events < 100:
            raise CommandError("--events must be at least 100")
        result = dashboard_bench.run_failure_report(
            events, parts, workers, use_running_workers, self.stderr.write, timeout=timeout
        )
        self.stdout.write(json.dumps(result))
