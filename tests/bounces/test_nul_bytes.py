"""A NUL byte in a returned message: Postgres text refuses it, so the texts are stored
without it and the message as bytes, instead of "database down" and a retry forever."""

from __future__ import annotations

import pytest

from bounces import intake, mailboxes
from bounces.models import BounceEvent, BounceMailbox, MailboxReceipt, QuarantinedMessage
from lists.models import Subscription
from tests.bounces.inbound import manage
from tests.bounces.returned import message, sent_to, verp_address


def nul_bounce(recipient: str) -> bytes:
    raw = message("dsn_nul_bytes.eml", recipient=recipient)
    assert raw.count(b"\x00") == 4
    return raw


def assert_stored_without_nul(raw: bytes) -> BounceEvent:
    event = BounceEvent.objects.get()
    assert event.bounce_class == "hard" and "User unknown in virtual" in event.diagnostic
    assert "\x00" not in event.diagnostic + event.recipient + event.raw
    assert bytes(event.message.raw) == raw  # the message itself is kept as it came
    assert not QuarantinedMessage.objects.exists()
    return event


@pytest.mark.django_db
def test_texts_lose_their_nul_bytes_and_the_message_keeps_them(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = nul_bounce("ann@reader.example")

    intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery) + "\x00")

    assert_stored_without_nul(raw)
    assert Subscription.objects.get(subscriber=delivery.subscriber).status == "bounced"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_piped_bounce_with_nul_bytes_is_stored_on_postgres(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = nul_bounce("ann@reader.example")

    done = manage("receive_bounce", "--recipient", verp_address(delivery), stdin=raw)

    assert done.returncode == 0, done.stderr  # not 75: the MTA would retry it forever
    assert_stored_without_nul(raw)
    assert Subscription.objects.get(subscriber=delivery.subscriber).status == "bounced"


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_poller_stores_a_fetched_bounce_with_nul_bytes_on_postgres(owner) -> None:  # noqa: ANN001
    # mailboxes.store() is what a poll does with each fetched message (Dovecot's IMAP turns
    # NUL into another byte; other servers hand it over as it is).
    sent_to(owner, "ann@reader.example")
    raw = nul_bounce("ann@reader.example").replace(b"\n", b"\r\n")
    mailbox = BounceMailbox.objects.create(name="bounces", host="127.0.0.1", username="b")

    assert mailboxes.store(mailbox, raw) is True

    assert_stored_without_nul(raw)
    receipt = MailboxReceipt.objects.get()
    assert receipt.message_id == "<dsn-nul@out.mailpanel.example>"
    assert mailboxes.store(mailbox, raw) is False  # the next poll only removes it
