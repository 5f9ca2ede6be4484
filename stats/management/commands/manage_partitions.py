from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stats import partitions


class Command(BaseCommand):
    help = "The monthly partitions of the event log (PostgreSQL): ensure, list, detach."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ensure = sub.add_parser("ensure", help="make this month's and the next months'")
        ensure.add_argument("--months-ahead", type=int, default=3)
        sub.add_parser("list", help="show the partitions and their estimated rows")
        detach = sub.add_parser("detach", help="detach a month for archiving")
        detach.add_argument("month", help="YYYY-MM")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if not partitions.is_partitioned():
            raise CommandError("The event log is partitioned only on PostgreSQL.")
        if action == "ensure":
            made = partitions.ensure_partitions(options["months_ahead"])
            self.stdout.write(f"made: {', '.join(made)}" if made else "nothing to make")
        elif action == "list":
            for p in partitions.list_partitions():
                self.stdout.write(f"{p.name}\t{p.bounds}\t~{p.rows} rows")
        else:
            try:
                name = partitions.detach_partition(partitions.parse_month(options["month"]))
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"detached {name}: archive it with `pg_dump -t {name}`, then DROP TABLE {name}."
            )
