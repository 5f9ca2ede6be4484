"""Runs the LMTP (or SMTP) server that stores returned messages (bounces/receiver.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from bounces import receiver


class Command(BaseCommand):
    help = "Receives returned messages over LMTP or SMTP and stores them."
    # Checked at deployment (manage.py check); a long-running receiver should start quickly.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=2525)
        parser.add_argument("--lmtp", action="store_true", help="Speak LMTP instead of SMTP.")

    def handle(self, *args: object, host: str, port: int, lmtp: bool, **options: object) -> None:
        self.stdout.write(f"Receiving bounces over {'LMTP' if lmtp else 'SMTP'} on {host}:{port}")
        self.stdout.flush()
        receiver.serve(host, port, lmtp=lmtp)
