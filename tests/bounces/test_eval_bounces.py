from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

MESSAGES = Path(__file__).parent / "messages"


def run(directory: Path, labels: Path, *args: str) -> list[str]:
    out = StringIO()
    call_command("eval_bounces", str(directory), "--expected", str(labels), *args, stdout=out)
    return out.getvalue().splitlines()


def test_it_scores_the_fixture_messages_and_ends_with_one_json_line():
    lines = run(MESSAGES, MESSAGES / "expected.jsonl")
    summary = json.loads(lines[-1])

    stable = [
        r
        for r in map(json.loads, (MESSAGES / "expected.jsonl").read_text().splitlines())
        if r["stable"]
    ]
    assert summary["messages"] == summary["rows"] == len(stable)
    assert summary["crashed"] == 0
    assert summary["recipient_recall"] == 1.0
    assert summary["hard_precision"] == summary["hard_recall"] == 1.0
    assert summary["sender_side_classed_hard"] == 0.0
    assert summary["soft_classed_hard"] == 0
    for klass in ("hard", "soft", "sender_side", "complaint", "not_a_failure"):
        assert summary["per_class"][klass]["precision"] == 1.0
        assert summary["per_class"][klass]["recall"] == 1.0
    text = "\n".join(lines[:-1])
    assert "recipient recall: 1.0" in text
    assert "classed hard by mistake: soft 0, sender_side 0" in text


def test_a_wrong_label_shows_as_a_miss_and_in_the_confusion(tmp_path):
    # Same message, labelled soft although it is a dead address: the score must drop.
    labels = tmp_path / "labels.jsonl"
    row = {
        "file": "postfix_user_unknown.eml",
        "index": 1,
        "recipient": "gone.reader@recipient.example",
        "mailpanel_class": "soft",
        "stable": True,
    }
    labels.write_text(json.dumps(row) + "\n")

    lines = run(MESSAGES, labels, "--verbosity", "2")
    summary = json.loads(lines[-1])

    assert summary["soft_classed_hard"] == 1
    assert summary["hard_precision"] == 0.0
    assert summary["per_class"]["soft"]["recall"] == 0.0
    assert "  soft -> hard: 1" in lines
    miss = lines.index(
        "  miss postfix_user_unknown.eml gone.reader@recipient.example: expected soft, got hard"
    )
    # What the parser read follows each mistake, for an operator to judge the rule or label.
    assert lines[miss + 1].startswith("      5.1.1 550: ")
    assert "User unknown in local recipient table" in lines[miss + 1]


def test_unstable_rows_count_only_with_all():
    stable_only = json.loads(run(MESSAGES, MESSAGES / "expected.jsonl")[-1])
    everything = json.loads(run(MESSAGES, MESSAGES / "expected.jsonl", "--all")[-1])

    assert everything["rows"] == stable_only["rows"] + 1  # garbage.eml is not a stable row
    assert everything["recipient_recall"] < 1.0


def test_a_missing_directory_is_a_command_error(tmp_path):
    with pytest.raises(CommandError):
        run(tmp_path / "nowhere", MESSAGES / "expected.jsonl")


def test_check_passes_when_every_target_is_met():
    lines = run(MESSAGES, MESSAGES / "expected.jsonl", "--check")

    assert json.loads(lines[-1])["hard_precision"] == 1.0


def test_check_names_each_score_below_its_target(tmp_path):
    # Two dead addresses labelled soft: hard precision (and soft recall) fall to zero.
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"file": name, "index": 1, "recipient": recipient, "mailpanel_class": "soft"}
        for name, recipient in (
            ("postfix_user_unknown.eml", "gone.reader@recipient.example"),
            ("domino_not_in_directory.eml", "left.the.firm@lotus.example"),
        )
    ]
    labels.write_text("".join(json.dumps({**row, "stable": True}) + "\n" for row in rows))
    out = StringIO()

    with pytest.raises(CommandError) as error:
        call_command(
            "eval_bounces", str(MESSAGES), "--expected", str(labels), "--check", stdout=out
        )

    assert str(error.value) == (
        "below target: hard_precision 0.0 (target: at least 0.97); "
        "hard_recall 0.0 (target: at least 0.9)"
    )
    # The scores are still printed, their JSON line last.
    assert json.loads(out.getvalue().splitlines()[-1])["soft_classed_hard"] == 2
