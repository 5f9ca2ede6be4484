from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandParser

from campaigns import benchmark


class Command(BaseCommand):
    help = "Freezes a realistic campaign and times merging it for N synthetic recipients."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--recipients", type=int, default=100_000)

    def handle(self, *args: object, **options: object) -> None:
        result = benchmark.run(int(options["recipients"]))
        self.stdout.write(json.dumps(result))
