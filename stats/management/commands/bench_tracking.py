from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stats import tracking_bench


class Command(BaseCommand):
    help = "Measures the tracking endpoints under load (gunicorn, Redis, the drain, the log)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--seconds", type=float, default=20)
        parser.add_argument("--recipients", type=int, default=5000)
        parser.add_argument("--connections", type=int, default=8)
        parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")

    def handle(self, *args: Any, seconds: float, recipients: int, connections: int,
               client: str, **options: Any) -> None:  # fmt: skip
        try:
            result = tracking_bench.run(
                seconds, recipients, connections, client, lambda line: self.stderr.write(line)
            )
        except tracking_bench.NotMeasurable as refused:
            raise CommandError(str(refused)) from refused
        self.stdout.write(json.dumps(result))
