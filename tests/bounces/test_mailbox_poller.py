"""The mailbox poller against a real Dovecot on loopback (tests/bounces/mailserver.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bounces import intake, mailboxes
from bounces.models import BounceEvent, BounceMailbox, MailboxLease, QuarantinedMessage
from tests.bounces import mailserver

MESSAGES = Path(__file__).parent / "messages"

pytestmark = pytest.mark.skipif(not mailserver.available(), reason="needs dovecot-imapd")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[mailserver.Dovecot]:
    server = mailserver.start()
    try:
        yield server
    finally:
        server.stop()


def bounce(n: int) -> bytes:
    """A distinct DSN for user<n>@example.net."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: bounces@example.org\r\n"
        f"Delivered-To: bounces@example.org\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{n}@mx.example.net>\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        f"\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver.\r\n"
        f"\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; user{n}@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <user{n}@example.net>: User unknown\r\n"
        f"\r\n--b--\r\n"
    ).encode()


def make_mailbox(dovecot: mailserver.Dovecot, **fields: object) -> BounceMailbox:
    protocol = fields.get("protocol", BounceMailbox.Protocol.IMAP)
    security = fields.get("security", BounceMailbox.Security.NONE)
    ports = {
        ("imap", "tls"): dovecot.imaps,
        ("pop3", "tls"): dovecot.pop3s,
        ("imap", "none"): dovecot.imap,
        ("imap", "starttls"): dovecot.imap,
        ("pop3", "none"): dovecot.pop3,
        ("pop3", "starttls"): dovecot.pop3,
    }
    mailbox = BounceMailbox(
        name=f"box {dovecot.new_user()}",
        host="127.0.0.1",
        port=ports[(str(protocol), str(security))],
        username=dovecot.new_user(),
        **{"protocol": protocol, "security": security, **fields},
    )
    mailbox.set_password(mailserver.PASSWORD)
    mailbox.save()
    return mailbox


@pytest.fixture
def trusted_ca(settings, dovecot: mailserver.Dovecot) -> None:  # noqa: ANN001
    settings.BOUNCE_MAILBOX_CA_FILE = dovecot.ca_file


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("protocol", "security"),
    [
        ("imap", "none"),
        ("imap", "starttls"),
        ("imap", "tls"),
        ("pop3", "starttls"),
        ("pop3", "tls"),
    ],
)
def test_it_stores_each_message_then_deletes_it(
    dovecot: mailserver.Dovecot, trusted_ca: None, protocol: str, security: str
) -> None:
    mailbox = make_mailbox(dovecot, protocol=protocol, security=security)
    for n in (1, 2):
        dovecot.deliver(mailbox.username, bounce(n))

    result = mailboxes.poll(mailbox.id)

    assert result is not None and result.error == ""
    assert (result.stored, result.removed) == (2, 2)
    recipients = set(BounceEvent.objects.values_list("recipient", flat=True))
    assert recipients == {"user1@example.net", "user2@example.net"}
    assert set(BounceEvent.objects.values_list("bounce_class", flat=True)) == {"hard"}
    assert dovecot.messages(mailbox.username) == []
    mailbox.refresh_from_db()
    assert mailbox.last_polled_at is not None and mailbox.last_error == ""


@pytest.mark.django_db
def test_it_moves_messages_to_the_folder_after_storing(dovecot: mailserver.Dovecot) -> None:
    mailbox = make_mailbox(
        dovecot, after_processing=BounceMailbox.AfterProcessing.MOVE, move_to_folder="Done bounces"
    )
    dovecot.deliver(mailbox.username, bounce(3))

    result = mailboxes.poll(mailbox.id)

    assert result is not None and (result.stored, result.removed, result.error) == (1, 1, "")
    assert dovecot.messages(mailbox.username) == []
    assert len(dovecot.messages(mailbox.username, "Done bounces")) == 1
    assert BounceEvent.objects.get().recipient == "user3@example.net"


@pytest.mark.django_db
def test_a_message_nothing_understands_is_quarantined_not_lost(
    dovecot: mailserver.Dovecot,
) -> None:
    mailbox = make_mailbox(dovecot)
    dovecot.deliver(
        mailbox.username, b"Subject: hello\r\nX-Original-To: b@example.org\r\n\r\nhi\r\n"
    )

    mailboxes.poll(mailbox.id)

    kept = QuarantinedMessage.objects.get()
    assert kept.source == "mailbox" and kept.envelope_recipient == "b@example.org"
    assert dovecot.messages(mailbox.username) == []


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_poller_killed_mid_run_loses_nothing_and_stores_nothing_twice(
    dovecot: mailserver.Dovecot, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # The "kill": intake fails on the second message, after the first was stored.
    mailbox = make_mailbox(dovecot, protocol=protocol)
    for n in (1, 2, 3):
        dovecot.deliver(mailbox.username, bounce(n))
    real = intake.record_message
    calls = []

    def dies_on_second(raw: bytes, **kwargs: object) -> object:
        calls.append(raw)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return real(raw, **kwargs)

    monkeypatch.setattr(intake, "record_message", dies_on_second)
    with pytest.raises(SystemExit):
        mailboxes.poll(mailbox.id)
    assert BounceEvent.objects.count() == 1
    # POP3 deletes only at QUIT, IMAP at EXPUNGE: all three are still on the server.
    assert len(dovecot.messages(mailbox.username)) == 3
    assert MailboxLease.objects.get(mailbox=mailbox).expires_at is not None

    monkeypatch.setattr(intake, "record_message", real)
    result = mailboxes.poll(mailbox.id)

    # IMAP flagged the first one \Deleted before the kill; this run's EXPUNGE removes it.
    removed_now = 3 if protocol == "pop3" else 2
    assert result is not None and (result.stored, result.removed) == (2, removed_now)
    recipients = sorted(BounceEvent.objects.values_list("recipient", flat=True))
    assert recipients == ["user1@example.net", "user2@example.net", "user3@example.net"]
    assert dovecot.messages(mailbox.username) == []


@pytest.mark.django_db
def test_a_broken_connection_is_recorded_on_the_mailbox(dovecot: mailserver.Dovecot) -> None:
    mailbox = make_mailbox(dovecot)
    mailbox.set_password("wrong")
    mailbox.save()
    dovecot.deliver(mailbox.username, bounce(4))

    result = mailboxes.poll(mailbox.id)

    assert result is not None and "authentication failed" in result.error.lower()
    mailbox.refresh_from_db()
    assert mailbox.last_polled_at is not None and "authentication" in mailbox.last_error.lower()
    assert BounceEvent.objects.count() == 0
    assert len(dovecot.messages(mailbox.username)) == 1


@pytest.mark.django_db
def test_an_untrusted_certificate_is_refused(dovecot: mailserver.Dovecot) -> None:
    mailbox = make_mailbox(dovecot, security=BounceMailbox.Security.TLS)
    dovecot.deliver(mailbox.username, bounce(5))

    result = mailboxes.poll(mailbox.id)

    assert result is not None and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert len(dovecot.messages(mailbox.username)) == 1


@pytest.mark.django_db
def test_a_mailbox_polled_by_another_worker_is_skipped(dovecot: mailserver.Dovecot) -> None:
    mailbox = make_mailbox(dovecot)
    dovecot.deliver(mailbox.username, bounce(6))
    holder = mailboxes._claim(mailbox.id)
    assert holder is not None

    assert mailboxes.poll(mailbox.id) is None
    assert len(dovecot.messages(mailbox.username)) == 1

    MailboxLease.objects.filter(mailbox=mailbox).update(expires_at=None)
    assert mailboxes.poll(mailbox.id).stored == 1


@pytest.mark.django_db
def test_the_beat_tick_polls_every_enabled_mailbox(
    dovecot: mailserver.Dovecot, celery_eager: None
) -> None:
    from bounces import tasks

    enabled, disabled = make_mailbox(dovecot), make_mailbox(dovecot, enabled=False)
    dovecot.deliver(enabled.username, bounce(7))
    dovecot.deliver(disabled.username, bounce(8))

    tasks.poll_mailboxes.delay()

    assert list(BounceEvent.objects.values_list("recipient", flat=True)) == ["user7@example.net"]
    assert len(dovecot.messages(disabled.username)) == 1


@pytest.mark.django_db
def test_poll_now_in_the_admin_polls_and_reports(
    dovecot: mailserver.Dovecot,
    operator_client,  # noqa: ANN001
) -> None:
    mailbox = make_mailbox(dovecot)
    dovecot.deliver(mailbox.username, bounce(9))

    response = operator_client.post(
        "/admin/bounces/bouncemailbox/",
        {"action": "poll_now", "_selected_action": [mailbox.id]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 stored, 1 removed" in response.content.decode()
    assert BounceEvent.objects.get().recipient == "user9@example.net"
