"""Reads one returned message on stdin, for an MTA's pipe transport.

Postfix: ``bounces unix - n n - - pipe flags=Rq user=mailpanel
argv=/srv/mailpanel/manage.py receive_bounce --recipient ${recipient}``

Exit status 0 whenever the message is stored, parsed or quarantined: a non-zero status makes
the MTA bounce the bounce. Only when nothing could be stored (the database is down) does it
exit 75 (EX_TEMPFAIL), which MTAs treat as "keep it queued and try again".
"""

from __future__ import annotations

import logging
import sys

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from bounces import intake
from bounces.models import Source

logger = logging.getLogger(__name__)

EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "Stores one returned message read on stdin (an MTA pipe transport)."
    # An MTA runs this once per bounce: configuration checks belong to deployment, and a
    # warning-turned-error there must not make the MTA bounce the bounce.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recipient", default="", help="The envelope recipient (the VERP address)."
        )

    def handle(self, *args: object, recipient: str = "", **options: object) -> None:
        raw = sys.stdin.buffer.read()
        try:
            events = intake.record_message(
                raw, source=Source.PIPE, envelope_recipient=recipient or None
            )
        except DatabaseError as exc:
            logger.error("bounce not stored, the MTA will retry: %s", exc)
            self.stderr.write(f"not stored, try again later: {exc}")
            sys.exit(EX_TEMPFAIL)
        if events:
            self.stdout.write(f"stored {len(events)} event(s)")
        else:
            self.stdout.write("quarantined")
