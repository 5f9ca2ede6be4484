from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bounces.evaluation import confusion, evaluate, missed_targets

# Enough of a diagnostic to judge a mistake by; the full text is in the message.
DIAGNOSTIC_SHOWN = 240


class Command(BaseCommand):
    help = "Score bounce parsing and classification against a labelled directory of messages."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--expected", type=Path, required=True, help="labels (.jsonl)")
        parser.add_argument("--all", action="store_true", help="score unstable rows too")
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit with an error naming each score below its target (for CI)",
        )
        # --verbosity 2 (-v 2) lists every misclassified row with its status, reply code and
        # diagnostic, and every recipient the parser did not find.

    def handle(self, *args, directory: Path, expected: Path, all: bool, check: bool, **options):
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory")
        if not expected.is_file():
            raise CommandError(f"{expected} is not a file")
        evaluation = evaluate(directory, expected, include_unstable=all)
        summary = evaluation.summary()
        out = self.stdout.write
        out(f"rows scored: {'all' if all else 'stable only'}")
        out(f"messages: {summary['messages']}  rows: {summary['rows']}")
        out(f"crashed: {summary['crashed']}")
        for crash in evaluation.crashes:
            out(f"  crash {crash}")
        out(
            f"recipient recall: {summary['recipient_recall']} "
            f"({evaluation.recipients_found}/{evaluation.rows}; {evaluation.placeholder_rows} "
            "redacted rows count as found when any recipient, VERP token or Message-ID was parsed)"
        )
        for klass, scores in summary["per_class"].items():
            out(
                f"  {klass:<20} precision {scores['precision']:<7} recall {scores['recall']:<7}"
                f" support {scores['support']}"
            )
        out(
            f"classed hard by mistake: soft {summary['soft_classed_hard']}, sender_side "
            f"{summary['sender_side_classed_hard_count']} "
            f"({summary['sender_side_classed_hard']:.2%} of sender-side rows)"
        )
        counts = confusion(evaluation)
        out("confusion (expected -> got: count):")
        for (expected_class, got), count in sorted(counts.items()):
            if expected_class != got:
                out(f"  {expected_class} -> {got}: {count}")
        if options.get("verbosity", 1) >= 2:
            out("mistakes (file recipient: expected, got; status reply: what the parser read):")
            for mistake in evaluation.mistakes:
                out(
                    f"  miss {mistake.file} {mistake.recipient}: expected {mistake.expected}, "
                    f"got {mistake.got}"
                )
                out(
                    f"      {mistake.status or '-'} {mistake.reply_code or '-'}: "
                    f"{mistake.diagnostic[:DIAGNOSTIC_SHOWN]}"
                )
            for name, recipient in evaluation.missed_recipients:
                out(f"  recipient not found {name}: {recipient}")
        out(json.dumps(summary, sort_keys=True))
        # After the JSON line, which stays the last line of the output; the error goes to stderr.
        missed = missed_targets(summary) if check else []
        if missed:
            raise CommandError("below target: " + "; ".join(missed))
