"""bounces.intake.record_message: store first, then rules; quarantine what nobody understands."""

from __future__ import annotations

from string import Template

import pytest

from bounces import intake, parse
from bounces.models import BounceEvent, QuarantinedMessage, ReturnedMessage
from lists.models import Subscription
from tests.bounces.returned import MESSAGES, message, raw_file, sent_to, verp_address

pytestmark = pytest.mark.django_db


def test_a_hard_bounce_is_stored_with_its_raw_message_and_suppresses(owner) -> None:
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example")

    [event] = intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))

    event.refresh_from_db()
    assert (event.bounce_class, event.status_code, event.reply_code) == ("hard", "5.1.1", "550")
    assert event.delivery == delivery and event.account == owner and event.applied
    assert event.receiving_domain == "reader.example"
    assert "User unknown in virtual" in event.raw_text() and "User unknown" in event.diagnostic
    subscription = Subscription.objects.get(subscriber=delivery.subscriber)
    assert subscription.status == "bounced"
    assert "5.1.1" in subscription.changes.get().note


@pytest.mark.parametrize(
    "transform",
    [
        lambda raw: raw.replace(b"\n", b"\r\n"),
        lambda raw: raw.replace(b"\n", b"\r"),
        lambda raw: b"From MAILER-DAEMON Tue Nov 17 08:00:00 2026\n" + raw,
    ],
    ids=["crlf", "cr-only", "mbox-from-line"],
)
def test_line_endings_and_mbox_separators_do_not_matter(owner, transform) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = transform(message("dsn_user_unknown.eml", recipient="ann@reader.example"))

    events = intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))

    assert [(e.recipient, e.bounce_class) for e in events] == [("ann@reader.example", "hard")]


def test_a_message_without_any_failure_is_quarantined_with_the_reason(db) -> None:  # noqa: ANN001
    raw = raw_file("not_a_message.eml")

    assert intake.record_message(raw, source="pipe", envelope_recipient="bounces@x.example") == []

    kept = QuarantinedMessage.objects.get()
    assert bytes(kept.raw) == raw  # byte for byte, NULs and invalid UTF-8 included
    assert kept.status == "waiting"
    assert kept.reason.startswith("no recipient or failure found")
    assert kept.envelope_recipient == "bounces@x.example"
    assert not BounceEvent.objects.exists()


def test_an_empty_message_is_quarantined(db) -> None:  # noqa: ANN001
    assert intake.record_message(b"", source="lmtp") == []
    assert QuarantinedMessage.objects.get().reason == "empty message"


def test_a_parser_that_raises_sends_the_message_to_quarantine(db, monkeypatch) -> None:  # noqa: ANN001
    def explode(data: bytes) -> None:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(parse.email, "message_from_bytes", explode)
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example")

    assert intake.record_message(raw, source="pipe") == []

    kept = QuarantinedMessage.objects.get()
    assert "parser exploded" in kept.reason and bytes(kept.raw) == raw


def test_a_detector_that_raises_is_named_in_the_quarantine_reason(db, monkeypatch) -> None:  # noqa: ANN001
    class Exploding:
        def process(self, msg: object) -> None:
            raise ValueError("detector exploded")

    monkeypatch.setattr(parse, "DETECTORS", [Exploding])

    assert intake.record_message(raw_file("not_a_message.eml"), source="mailbox") == []

    assert "Exploding: ValueError('detector exploded')" in QuarantinedMessage.objects.get().reason


def test_a_bounce_nobody_can_attribute_is_still_stored(db) -> None:  # noqa: ANN001
    raw = message("dsn_user_unknown.eml", recipient="stranger@nowhere.example")

    [event] = intake.record_message(raw, source="pipe")

    assert event.account is None and event.subscriber is None and event.applied
    assert event.recipient == "stranger@nowhere.example"


def test_quarantine_keeps_text_payloads_as_bytes(db) -> None:  # noqa: ANN001
    kept = intake.quarantine('{"event": "?"}', source="webhook", provider="ses", reason="bad")
    kept.refresh_from_db()
    assert kept.raw_text() == '{"event": "?"}' and kept.provider == "ses"


def many_recipients(count: int) -> bytes:
    """One DSN with a delivery-status block per recipient (a mail loop, an exploded alias)."""
    block = Template((MESSAGES / "dsn_recipient_block.txt").read_text())
    blocks = "".join(block.substitute(n=n) for n in range(count))
    return Template(raw_file("dsn_many_recipients.eml").decode()).substitute(blocks=blocks).encode()


def test_a_message_is_stored_once_however_many_recipients_it_lists(db) -> None:  # noqa: ANN001
    raw = many_recipients(3)

    events = intake.record_message(raw, source="pipe")

    assert len(events) == 3
    returned = ReturnedMessage.objects.get()
    assert bytes(returned.raw) == raw and returned.note == ""
    assert set(BounceEvent.objects.values_list("message", "raw")) == {(returned.id, "")}
    assert "user2@reader.example" in BounceEvent.objects.first().raw_text()


def test_the_recipients_taken_from_one_message_are_capped_and_the_rest_counted(db) -> None:  # noqa: ANN001
    raw = many_recipients(2000)

    events = intake.record_message(raw, source="pipe")

    assert len(events) == intake.MAX_RECIPIENTS_PER_MESSAGE == 500
    returned = ReturnedMessage.objects.get()
    assert (returned.recipients_found, returned.recipients_recorded) == (2000, 500)
    assert "1500 were not" in returned.note
    # The database holds the message once, not once per event.
    assert sum(len(raw) for raw in BounceEvent.objects.values_list("raw", flat=True)) == 0
