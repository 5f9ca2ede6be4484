from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from mailpanel.outbox import make_controller, outbox_dir


class Command(BaseCommand):
    help = "Runs the local outbox: an SMTP server that stores every message under var/outbox."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=settings.OUTBOX_SMTP_HOST)
        parser.add_argument("--port", type=int, default=settings.OUTBOX_SMTP_PORT)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        controller = make_controller(host, port)
        controller.start()
        self.stdout.write(f"Outbox listening on {host}:{port}, storing into {outbox_dir()}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        controller.stop()
        self.stdout.write("Outbox stopped.")
