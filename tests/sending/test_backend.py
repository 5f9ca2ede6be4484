"""mailpanel's own mail (confirmations, test sends) goes through the relays, signed."""

from __future__ import annotations

import dkim
import pytest
from django.core.mail import send_mail
from django.utils import timezone

from sending import domains
from sending.models import Relay

pytestmark = pytest.mark.django_db


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
    records = {r.name: r.value for r in domains.records(domain)}
    assert dkim.verify(
        message.data,
        dnsfunc=lambda name, timeout=5: records.get(name.decode().rstrip("."), "").encode(),
    )


def test_without_a_relay_mail_falls_back_to_the_configured_server(
    relay_backend, smtp_server
) -> None:  # noqa: ANN001
    relay_backend.EMAIL_FALLBACK_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    relay_backend.EMAIL_HOST, relay_backend.EMAIL_PORT = smtp_server.host, smtp_server.port
    send_mail("Hello", "body", "news@example.com", ["reader@example.org"])
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["reader@example.org"]
    assert b"DKIM-Signature" not in smtp_server.messages[0].data
