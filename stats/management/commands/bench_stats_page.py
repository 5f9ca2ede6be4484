"""Times the campaign key-numbers page of a big throw-away campaign.

    python manage.py bench_stats_page --deliveries 1000000 --events 3000000 [--runs 9]

Builds the audience, one delivery per subscriber, the events in the log and the rollups,
opens the page with the test client several times, deletes everything it made, and
prints one JSON object (with ``median_ms``) as the last line.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stats import dashboard_bench


class Command(BaseCommand):
    help = "Times the campaign statistics page at a million deliveries (median ms)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--deliveries", type=int, default=1_000_000)
        parser.add_argument("--events", type=int, default=3_000_000)
        parser.add_argument("--runs", type=int, default=9)

    def handle(self, *args: object, deliveries: int, events: int, runs: int,
               **options: object) -> None:  # fmt: skip
        if deliveries < 10 or runs < 1:
            raise CommandError("--deliveries must be at least 10 and --runs at least 1")
        result = dashboard_bench.run_stats_page(deliveries, events, runs, self.stderr.write)
        self.stdout.write(json.dumps(result))
