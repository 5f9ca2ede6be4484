"""manage.py run_bounce_receiver: a real LMTP (and SMTP) server on a loopback port."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from bounces.models import BounceEvent, QuarantinedMessage
from lists.models import Subscription
from tests.bounces.inbound import start, wait_for_port
from tests.bounces.returned import message, raw_file, sent_to, verp_address
from tests.services import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def crlf(raw: bytes) -> bytes:
    # On the wire lines end in CRLF; smtplib sends bytes as they are.
    return raw.replace(b"\n", b"\r\n")


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    flags = ["--lmtp"] if request.param == "lmtp" else []
    process = start("run_bounce_receiver", "--host", "127.0.0.1", "--port", str(port), *flags)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("receiver", ["lmtp"], indirect=True)
def test_each_lmtp_recipient_gets_its_own_reply_and_event(owner, receiver) -> None:  # noqa: ANN001
    ann = sent_to(owner, "ann@reader.example")
    bob = sent_to(owner, "bob@reader.example", campaign=ann.campaign)
    raw = crlf(message("dsn_user_unknown.eml", recipient="someone@reader.example"))

    with smtplib.LMTP("127.0.0.1", receiver, timeout=20) as lmtp:
        lmtp.ehlo("mta.example")
        assert lmtp.mail("<>")[0] == 250
        for delivery in (ann, bob):
            assert lmtp.rcpt(verp_address(delivery))[0] == 250
        first = lmtp.data(raw)
        second = lmtp.getreply()  # RFC 2033: one reply per accepted recipient

    assert first == (250, b"2.0.0 stored") and second == (250, b"2.0.0 stored")
    events = BounceEvent.objects.order_by("delivery_id")
    assert [(e.source, e.delivery_id) for e in events] == [("lmtp", ann.id), ("lmtp", bob.id)]
    assert set(Subscription.objects.values_list("status", flat=True)) == {"bounced"}


@pytest.mark.parametrize("receiver", ["smtp"], indirect=True)
def test_the_smtp_receiver_stores_and_quarantines(owner, receiver) -> None:  # noqa: ANN001
    ann = sent_to(owner, "ann@reader.example")

    with smtplib.SMTP("127.0.0.1", receiver, timeout=20) as server:
        server.sendmail(
            "",
            [verp_address(ann)],
            crlf(message("arf_complaint.eml", recipient="ann@reader.example")),
        )
        server.sendmail("", ["bounces@mailpanel.example"], crlf(raw_file("not_a_message.eml")))

    assert BounceEvent.objects.get().bounce_class == "complaint"
    kept = QuarantinedMessage.objects.get()
    assert kept.source == "lmtp" and kept.envelope_recipient == "bounces@mailpanel.example"


@pytest.mark.parametrize("receiver", ["smtp"], indirect=True)
def test_an_smtp_resend_after_a_temporary_failure_stores_nothing_twice(owner, receiver) -> None:  # noqa: ANN001
    # SMTP has one reply for all recipients: after a 451 for one, the MTA resends to all.
    ann = sent_to(owner, "ann@reader.example")
    bob = sent_to(owner, "bob@reader.example", campaign=ann.campaign)
    raw = crlf(message("dsn_user_unknown.eml", recipient="someone@reader.example"))

    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", receiver, timeout=20) as smtp:
            assert smtp.sendmail("", [verp_address(ann), verp_address(bob)], raw) == {}

    events = BounceEvent.objects.order_by("delivery_id")
    assert [e.delivery_id for e in events] == [ann.id, bob.id]
