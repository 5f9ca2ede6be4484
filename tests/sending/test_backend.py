"""mailpanel's own mail (confirmations, test sends) goes through the relays, signed."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
from datetime import timedelta

import dkim
import pytest
from django.core.mail import EmailMessage, send_mail
from django.utils import timezone

from sending import backend, domains, verp
from sending.models import Relay, SendingDomain
from tests.services import free_port, start_smtp_server

pytestmark = pytest.mark.django_db


def verify(data: bytes, domain: SendingDomain) -> bool:
    records = {r.name: r.value for r in domains.records(domain)}
    return dkim.verify(
        data, dnsfunc=lambda name, timeout=5: records.get(name.decode().rstrip("."), "").encode()
    )


@pytest.fixture
def relay_backend(settings):  # noqa: ANN001, ANN201
    settings.EMAIL_BACKEND = "sending.backend.RelayBackend"
    return settings


def test_mail_goes_through_a_relay_with_a_dkim_signature(relay_backend, smtp_server) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host=smtp_server.host, port=smtp_server.port, security="none")
    domain = domains.create("example.com", account=None)
    domain.verified_at = timezone.now()
    domain.save()
    assert send_mail("Confirm", "Click the link.", "news@example.com", ["reader@example.org"]) == 1
    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["reader@example.org"]
    assert verify(message.data, domain)


def test_without_a_relay_mail_falls_back_to_the_configured_server(
    relay_backend, smtp_server
) -> None:  # noqa: ANN001
    relay_backend.EMAIL_FALLBACK_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    relay_backend.EMAIL_HOST, relay_backend.EMAIL_PORT = smtp_server.host, smtp_server.port
    send_mail("Hello", "body", "news@example.com", ["reader@example.org"])
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["reader@example.org"]
    assert b"DKIM-Signature" not in smtp_server.messages[0].data


def test_a_dead_relay_fails_over_to_the_next(relay_backend, smtp_server) -> None:  # noqa: ANN001
    # Weight 0 is the last resort, so the dead relay is always tried first.
    Relay.objects.create(name="dead", host="127.0.0.1", port=free_port(), security="none")
    Relay.objects.create(
        name="alive", host=smtp_server.host, port=smtp_server.port, security="none", weight=0
    )
    assert send_mail("Confirm", "Click.", "news@example.com", ["reader@example.org"]) == 1
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [["reader@example.org"]]
    dead = Relay.objects.get(name="dead")
    assert dead.consecutive_failures == 1 and "refused" in dead.last_error.lower()


def test_a_relay_cooling_down_is_not_used(relay_backend, smtp_server) -> None:  # noqa: ANN001
    other_controller, other = start_smtp_server()
    try:
        Relay.objects.create(
            name="cooling", host=other.host, port=other.port, security="none", weight=1000,
            cooldown_until=timezone.now() + timedelta(minutes=5),
        )  # fmt: skip
        Relay.objects.create(
            name="ok", host=smtp_server.host, port=smtp_server.port, security="none", weight=1
        )
        send_mail("Confirm", "Click.", "news@example.com", ["reader@example.org"])
        assert len(smtp_server.wait_for(1)) == 1
        assert other.messages == []
    finally:
        other_controller.stop()


def test_an_accounts_mail_goes_through_its_dedicated_relays(
    relay_backend, smtp_server, owner
) -> None:  # noqa: ANN001
    shared_controller, shared = start_smtp_server()
    try:
        Relay.objects.create(name="shared", host=shared.host, port=shared.port, security="none")
        dedicated = Relay.objects.create(
            name="own", host=smtp_server.host, port=smtp_server.port, security="none"
        )
        dedicated.accounts.add(owner)
        mail = EmailMessage("Welcome", "Hi.", "news@example.com", ["reader@example.org"])
        assert backend.belongs_to(mail, owner).send() == 1
        assert len(smtp_server.wait_for(1)) == 1 and shared.messages == []

        # Mail of no account never uses an account's relay.
        send_mail("Reset", "Your link.", "ops@example.com", ["ops@example.org"])
        assert len(shared.wait_for(1)) == 1 and len(smtp_server.messages) == 1

        # While its relay cools down, the account's mail waits: it never leaks to the pool.
        Relay.objects.filter(id=dedicated.id).update(
            cooldown_until=timezone.now() + timedelta(minutes=5)
        )
        again = EmailMessage("Welcome", "Hi again.", "news@example.com", ["reader@example.org"])
        backend.belongs_to(again, owner)
        with pytest.raises(smtplib.SMTPServerDisconnected):  # the task retries it later
            again.send()
        assert len(shared.messages) == 1
    finally:
        shared_controller.stop()


def test_mail_of_a_verified_account_domain_is_that_accounts(
    relay_backend, smtp_server, owner
) -> None:  # noqa: ANN001
    dedicated = Relay.objects.create(
        name="own", host=smtp_server.host, port=smtp_server.port, security="none"
    )
    dedicated.accounts.add(owner)
    domain = domains.create("owner.example", account=owner)
    domain.verified_at = timezone.now()
    domain.save()
    send_mail("Confirm", "Click.", "news@owner.example", ["reader@example.org"])
    (message,) = smtp_server.wait_for(1)
    assert verp.message_from(message.mail_from).account_id == owner.id
    assert verify(message.data, domain)


def test_return_path_and_message_id_trace_the_mail(relay_backend, smtp_server, settings) -> None:  # noqa: ANN001
    settings.BOUNCE_DOMAIN = "bounces.example.net"
    Relay.objects.create(name="r", host=smtp_server.host, port=smtp_server.port, security="none")
    for _ in range(2):  # the same mail twice, as a retried task would send it
        send_mail("Confirm", "Click the link.", "news@example.com", ["reader@example.org"])
    first, second = smtp_server.wait_for(2)
    ref = verp.message_from(first.mail_from)
    assert ref is not None and ref.account_id is None
    assert first.mail_from.endswith("@bounces.example.net")
    assert verp.delivery_id_from(first.mail_from) is None  # never taken for a campaign's
    parsed = email.message_from_bytes(first.data, policy=email.policy.default)
    assert parsed["Message-ID"] == verp.message_id(ref.ref, "example.com")
    assert first.mail_from == second.mail_from
    assert parsed["Message-ID"] == email.message_from_bytes(second.data)["Message-ID"]
    assert verp.message_from(first.mail_from.replace(ref.ref[:4], "0000")) is None

    send_mail("Confirm", "Another link.", "news@example.com", ["reader@example.org"])
    assert smtp_server.wait_for(3)[2].mail_from != first.mail_from


@pytest.mark.redis
def test_mail_takes_tokens_from_the_relays_shared_bucket(relay_backend, smtp_server) -> None:  # noqa: ANN001
    from sending.delivery import _bucket

    relay = Relay.objects.create(
        name="r", host=smtp_server.host, port=smtp_server.port, security="none",
        rate_per_second=4,
    )  # fmt: skip
    bucket = _bucket(relay)  # the bucket campaign workers take from
    bucket.reset()
    bucket.take(4)  # a campaign emptied it
    started = time.monotonic()
    send_mail("Confirm", "Click.", "news@example.com", ["a@example.org", "b@example.org"])
    assert time.monotonic() - started >= 0.35  # two tokens at four per second
    assert len(smtp_server.wait_for(2)) == 2
