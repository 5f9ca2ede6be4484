"""Score parse + classify against a labelled directory of bounces (format of the shared corpus).

Each labels row is one failed recipient of one file. A row's recipient is found when a parsed
result names it (case-insensitive); its predicted class is that result's class, or the first
result's class when the recipient was not found, or "unknown" when nothing was parsed.
Rows with recipient_is_placeholder (redacted reports) count as found when the parser found any
recipient, VERP token or original Message-ID, since that is what attribution would use.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bounces import rules
from bounces.classify import classify
from bounces.parse import ParsedBounce, parse_bounce

# The corpus names the sender-side class "soft_sender_side".
LABEL_ALIASES = {"soft_sender_side": rules.SENDER_SIDE}

# The scores a classifier must reach on a labelled corpus, as (summary key, bound, limit):
# a dead address suppressed on weak evidence loses a reader, so hard precision comes first.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("crashed", "at most", 0),
    ("recipient_recall", "at least", 0.95),
    ("hard_precision", "at least", 0.97),
    ("hard_recall", "at least", 0.90),
    ("sender_side_classed_hard", "at most", 0.02),
)


@dataclass
class Mistake:
    """One row classed wrongly, with what the parser saw, for an operator to judge."""

    file: str
    recipient: str
    expected: str
    got: str
    status: str = ""
    reply_code: str = ""
    diagnostic: str = ""


@dataclass
class Evaluation:
    messages: int = 0
    crashed: int = 0
    crashes: list[str] = field(default_factory=list)
    rows: int = 0
    recipients_found: int = 0
    placeholder_rows: int = 0
    pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (file, expected, got)
    missed_recipients: list[tuple[str, str]] = field(default_factory=list)
    mistakes: list[Mistake] = field(default_factory=list)

    def precision_recall(self) -> dict[str, dict[str, float | int]]:
        out = {}
        for klass in rules.CLASSES:
            tp = sum(1 for _, e, g in self.pairs if e == klass and g == klass)
            predicted = sum(1 for _, _, g in self.pairs if g == klass)
            actual = sum(1 for _, e, _ in self.pairs if e == klass)
            if not predicted and not actual:
                continue
            out[klass] = {
                "precision": round(tp / predicted, 4) if predicted else 0.0,
                "recall": round(tp / actual, 4) if actual else 0.0,
                "support": actual,
            }
        return out

    def classed_hard(self, expected: str) -> int:
        return sum(1 for _, e, g in self.pairs if e == expected and g == rules.HARD)

    def summary(self) -> dict:
        per_class = self.precision_recall()
        sender_rows = sum(1 for _, e, _ in self.pairs if e == rules.SENDER_SIDE)
        hard = per_class.get(rules.HARD, {"precision": 0.0, "recall": 0.0})
        return {
            "messages": self.messages,
            "crashed": self.crashed,
            "rows": self.rows,
            "placeholder_rows": self.placeholder_rows,
            "recipient_recall": round(self.recipients_found / self.rows, 4) if self.rows else 0.0,
            "hard_precision": hard["precision"],
            "hard_recall": hard["recall"],
            "soft_classed_hard": self.classed_hard(rules.SOFT),
            "sender_side_classed_hard_count": self.classed_hard(rules.SENDER_SIDE),
            "sender_side_classed_hard": round(self.classed_hard(rules.SENDER_SIDE) / sender_rows, 4)
            if sender_rows
            else 0.0,
            "per_class": per_class,
        }


def missed_targets(summary: dict) -> list[str]:
    """Each target the summary misses, as "name value (target: at least limit)"."""
    missed = []
    for key, bound, limit in TARGETS:
        value = summary[key]
        met = value >= limit if bound == "at least" else value <= limit
        if not met:
            missed.append(f"{key} {value} (target: {bound} {limit})")
    return missed


def load_labels(path: Path, include_unstable: bool = False) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if not row.get("mailpanel_class"):
            continue
        if include_unstable or row.get("stable"):
            rows.append(row)
    return rows


def evaluate(directory: Path, labels_path: Path, include_unstable: bool = False) -> Evaluation:
    rows = load_labels(labels_path, include_unstable)
    base = labels_path.parent
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    evaluation = Evaluation()
    for name, file_rows in sorted(by_file.items()):
        path = base / name
        if not path.is_file():
            path = directory / name
        evaluation.messages += 1
        try:
            parsed = parse_bounce(path.read_bytes())
            classes = [classify(result) for result in parsed.results]
        except Exception as exc:  # counted, never fatal: one bad message must not stop the run
            evaluation.crashed += 1
            evaluation.crashes.append(f"{name}: {exc!r}")
            parsed, classes = ParsedBounce(), []
        for row in file_rows:
            _score_row(evaluation, name, row, parsed, classes)
    return evaluation


def _score_row(
    evaluation: Evaluation, name: str, row: dict, parsed: ParsedBounce, classes: list[str]
) -> None:
    evaluation.rows += 1
    expected_recipient = (row.get("recipient") or "").lower()
    index = next(
        (i for i, r in enumerate(parsed.results) if r.recipient.lower() == expected_recipient),
        None,
    )
    if row.get("recipient_is_placeholder"):
        evaluation.placeholder_rows += 1
        found = bool(
            any(r.recipient for r in parsed.results)
            or parsed.verp_token
            or parsed.original_message_id
        )
    else:
        found = index is not None
    if found:
        evaluation.recipients_found += 1
    else:
        evaluation.missed_recipients.append((name, expected_recipient))
    if index is None and classes:
        index = 0
    got = classes[index] if index is not None else "unknown"
    expected = LABEL_ALIASES.get(row["mailpanel_class"], row["mailpanel_class"])
    evaluation.pairs.append((name, expected, got))
    if got != expected:
        seen = parsed.results[index] if index is not None else None
        evaluation.mistakes.append(
            Mistake(
                file=name,
                recipient=expected_recipient,
                expected=expected,
                got=got,
                status=seen.status if seen else "",
                reply_code=seen.reply_code if seen else "",
                diagnostic=seen.diagnostic if seen else parsed.reason,
            )
        )


def confusion(evaluation: Evaluation) -> Counter:
    return Counter((e, g) for _, e, g in evaluation.pairs)
