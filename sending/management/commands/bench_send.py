from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sending import benchmark


class Command(BaseCommand):
    help = "Measures the real send pipeline end to end against an SMTP sink."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--recipients", type=int, default=100000)
        parser.add_argument("--smtp", required=True, help="host:port of the SMTP sink")
        parser.add_argument("--dkim", choices=["rsa", "ed25519", "none"], default="none")
        parser.add_argument("--workers", type=int, default=2)

    def handle(
        self, *args: Any, recipients: int, smtp: str, dkim: str, workers: int, **options: Any
    ) -> None:
        if ":" not in smtp:
            raise CommandError("--smtp must be host:port")
        log_dir = Path(tempfile.mkdtemp(prefix="bench-send-"))
        result = benchmark.run(recipients, smtp, dkim, workers, log_dir, self.stderr.write)
        # The workers' logs are kept only when the run failed (the error names the folder).
        shutil.rmtree(log_dir, ignore_errors=True)
        self.stdout.write(json.dumps({**asdict(result), "dkim": dkim, "workers": workers}))
