"""Starts everything mailpanel needs on one machine, in the foreground.

The web server, a Celery worker for every queue, beat and the local outbox run
as child processes; Ctrl-C (SIGINT) or SIGTERM stops them all, and whatever has
not stopped after a grace period is killed, so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Runs the web server, a Celery worker, beat and the outbox together until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default=os.environ.get("MAILPANEL_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args: Any, addr: str, concurrency: int, **options: Any) -> None:
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "mailpanel"]
        commands = {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [
                *celery,
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(concurrency),
                "-Q",
                "default,send,bounces,stats",
                "--prefetch-multiplier",
                "1",
                "--without-gossip",
                "--without-mingle",
                "-n",
                "local@%h",
            ],
            "beat": [*celery, "beat", "--loglevel", "INFO"],
        }
        if (
            settings.EMAIL_HOST == settings.OUTBOX_SMTP_HOST
            and settings.EMAIL_PORT == settings.OUTBOX_SMTP_PORT
        ):
            commands["outbox"] = [python, "manage.py", "run_outbox"]
        children = {
            name: subprocess.Popen(command, cwd=settings.BASE_DIR)  # noqa: S603
            for name, command in commands.items()
        }
        self.stdout.write(f"mailpanel is starting on http://{addr}/ (Ctrl-C stops everything)")

        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            exited = [name for name, child in children.items() if child.poll() is not None]
            if exited:
                self.stderr.write(f"{', '.join(exited)} exited; stopping the others.")
                break
            time.sleep(0.5)
        self._stop_all(children)

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        # A terminal's Ctrl-C reaches the children too; SIGTERM covers a signal sent to us alone.
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {GRACE_SECONDS}s; killing it.")
                child.kill()
                child.wait()
        self.stdout.write("mailpanel stopped.")
