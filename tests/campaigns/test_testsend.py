"""Test sends are built like the real send (merge, message builder, DKIM, the account's
relays) and marked as tests: a recording SMTP server behind a real Relay row reads them."""

from __future__ import annotations

import email
import email.policy

import dkim
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from campaigns import testsend
from campaigns.models import Attachment
from sending import domains, verp
from sending.models import Delivery, Relay
from stats.models import TrackingEvent
from tests.factories import (
    CampaignFactory,
    MailingListFactory,
    SubscriberFactory,
    SubscriptionFactory,
)
from tests.services import start_smtp_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(owner):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner, name="Weekly")
    SubscriptionFactory(
        mailing_list=mailing_list,
        subscriber=SubscriberFactory(account=owner, name="First"),
        status="confirmed",
    )
    return CampaignFactory(
        account=owner, lists=[mailing_list], from_email="news@example.com",
        body='<p>Hi {{ subscriber.name }}: <a href="https://example.com/a">read</a>, '
        '<a href="{{ unsubscribe_url }}">unsubscribe</a>.</p>',
    )  # fmt: skip


@pytest.fixture
def signing_domain(owner):  # noqa: ANN001, ANN201
    domain = domains.create("example.com", account=owner, ed25519=True)
    domain.verified_at = timezone.now()
    domain.save()
    return domain


def relay_to(server, name: str = "loop", **fields) -> Relay:  # noqa: ANN001, ANN003
    return Relay.objects.create(
        name=name, host=server.host, port=server.port, security="none", **fields
    )


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def test_a_test_send_is_the_real_message_marked_as_a_test(
    owner, campaign, signing_domain, smtp_server, media_root
) -> None:  # noqa: ANN001
    relay_to(smtp_server)
    Attachment.objects.create(
        campaign=campaign, file=ContentFile(b"%PDF-1.4 test", name="menu.pdf"),
        name="menu.pdf", size=13, content_type="application/pdf",
    )  # fmt: skip
    assert testsend.send_test(campaign, ["a@example.org", "b@example.org"]) == 2

    messages = smtp_server.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in messages) == ["a@example.org", "b@example.org"]
    received = messages[0]
    parsed = parse(received.data)
    assert parsed["X-Mailpanel-Test"] == "yes"
    assert parsed["Subject"] == "[Test] Hello First"
    assert parsed["X-Mailpanel-Campaign"] == campaign.uuid.hex
    assert parsed["List-Id"].endswith(f"<{campaign.lists.get().uuid.hex}.list-id.127.0.0.1>")
    assert parsed["Feedback-ID"] == f"{campaign.pk}:{owner.pk}:mailpanel"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = parsed["List-Unsubscribe"]
    assert "/s/unsubscribe/" in unsubscribe and "<mailto:unsubscribe@example.com>" in unsubscribe
    # The envelope is a VERP return path that names the account, and the Message-ID the
    # same message, never a campaign delivery.
    ref = verp.message_from(received.mail_from)
    assert ref is not None and ref.account_id == owner.pk
    assert parsed["Message-ID"] == verp.message_id(ref.ref, "example.com")
    assert verp.delivery_id_from(received.mail_from) is None
    # Links are left as written (nothing is counted), the attachment is there.
    html = parsed.get_body(("html",)).get_content()
    assert 'href="https://example.com/a"' in html and "/t/c/" not in html
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["menu.pdf"]

    records = {r.name: r.value for r in domains.records(signing_domain)}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    assert received.data.count(b"DKIM-Signature:") == 2  # RSA and Ed25519
    assert dkim.verify(received.data, dnsfunc=dns)
    assert not Delivery.objects.filter(campaign=campaign).exists()
    assert not TrackingEvent.objects.filter(campaign_id=campaign.pk).exists()
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not campaign.is_frozen


def test_a_test_send_goes_through_the_accounts_dedicated_relay(
    owner, campaign, smtp_server
) -> None:  # noqa: ANN001
    shared_controller, shared = start_smtp_server()
    try:
        relay_to(shared, name="shared", weight=1000)
        relay_to(smtp_server, name="own").accounts.add(owner)
        assert testsend.send_test(campaign, ["a@example.org"]) == 1
        assert len(smtp_server.wait_for(1)) == 1 and shared.messages == []
    finally:
        shared_controller.stop()


def test_a_test_sends_unsubscribe_link_names_no_subscriber(campaign, smtp_server) -> None:  # noqa: ANN001
    from mailpanel.lib import signing

    relay_to(smtp_server)
    testsend.send_test(campaign, ["a@example.org"])
    parsed = parse(smtp_server.wait_for(1)[0].data)
    url = parsed["List-Unsubscribe"].split("<", 1)[1].split(">", 1)[0]
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert signing.read_unsubscribe_token(token).subscriber_id == 0


def test_without_a_relay_a_test_send_lands_in_the_fallback(campaign, smtp_server, settings) -> None:  # noqa: ANN001
    settings.EMAIL_FALLBACK_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    assert testsend.send_test(campaign, ["a@example.org"]) == 1
    parsed = parse(smtp_server.wait_for(1)[0].data)
    assert parsed["X-Mailpanel-Test"] == "yes" and parsed["Subject"].startswith("[Test] ")
