"""The send pipeline in one process: dispatch, batches, merge, SMTP, records."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from sending import dispatch, verp
from sending.models import Delivery, Relay, SendBatch
from tests.factories import MailingListFactory, SubscriptionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

BODY = (
    "<p>Hello {{ subscriber.name|default:'friend' }}, "
    "<a href='https://example.com/a'>read</a> or "
    "<a href='{{ unsubscribe_url }}'>unsubscribe</a></p>"
)


@pytest.fixture
def relay(smtp_server) -> Relay:  # noqa: ANN001
    return Relay.objects.create(
        name="loopback", host=smtp_server.host, port=smtp_server.port, security="none",
        rate_per_second=1000,
    )  # fmt: skip


@pytest.fixture
def campaign_page(owner_client):  # noqa: ANN001, ANN201
    def get(campaign: Campaign) -> bytes:
        response = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid]))
        assert response.status_code == 200
        return response.content

    return get


def make_campaign(owner, mailing_lists, **kwargs) -> Campaign:  # noqa: ANN001
    campaign = Campaign.objects.create(
        account=owner, name="Launch", subject="News for {{ subscriber.name }}",
        from_name="News", from_email="news@example.com", body=BODY, body_format="html",
        **kwargs,
    )  # fmt: skip
    campaign.lists.set(mailing_lists)
    return campaign


def run_pipeline(settings, capture) -> None:  # noqa: ANN001
    for _ in range(5):
        with capture(execute=True):
            dispatch.tick()


def test_every_recipient_gets_exactly_one_message(
    owner, relay, smtp_server, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    settings.SEND_BATCH_SIZE = 7
    one, two = MailingListFactory(owner=owner), MailingListFactory(owner=owner)
    subs = [SubscriptionFactory(mailing_list=one) for _ in range(20)]
    # On both lists: still one copy.
    for s in subs[:5]:
        SubscriptionFactory(mailing_list=two, subscriber=s.subscriber)
    SubscriptionFactory(mailing_list=one, status="unsubscribed")
    campaign = make_campaign(owner, [one, two])
    scheduling.schedule(campaign)

    run_pipeline(settings, django_capture_on_commit_callbacks)

    messages = smtp_server.wait_for(20)
    assert len(messages) == 20
    rcpts = sorted(m.rcpt_tos[0] for m in messages)
    assert rcpts == sorted(s.subscriber.email for s in subs)
    assert SendBatch.objects.filter(campaign=campaign).count() == 3
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 20
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT

    parsed = email.message_from_bytes(messages[0].data, policy=email.policy.default)
    delivery_id = verp.delivery_id_from(messages[0].mail_from)
    assert Delivery.objects.get(id=delivery_id).subscriber.email == messages[0].rcpt_tos[0]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/s/unsubscribe/" in parsed["List-Unsubscribe"]
    assert parsed["Message-ID"] == f"<{campaign.uuid.hex}.{delivery_id}@example.com>"
    assert parsed["Subject"].startswith("News for ")

    # Running again sends nothing more.
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert len(smtp_server.messages) == 20


def test_a_campaign_past_its_grace_period_waits_for_the_owner(
    owner, relay, smtp_server, settings, django_capture_on_commit_callbacks, mailoutbox
) -> None:  # noqa: ANN001, E501
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign, timezone.now() - timezone.timedelta(hours=13))
    run_pipeline(settings, django_capture_on_commit_callbacks)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert smtp_server.messages == []
    assert [m.to for m in mailoutbox] == [[owner.email]]


@pytest.fixture
def late_campaign(owner, relay, settings, django_capture_on_commit_callbacks) -> Campaign:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign, timezone.now() - timezone.timedelta(hours=13))
    run_pipeline(settings, django_capture_on_commit_callbacks)
    campaign.refresh_from_db()
    return campaign


def test_resuming_a_late_campaign_sends_it_now_and_the_owner_is_told_once(
    late_campaign, smtp_server, settings, django_capture_on_commit_callbacks, mailoutbox
) -> None:  # noqa: ANN001, E501
    assert late_campaign.status == Campaign.Status.PAUSED
    scheduling.resume(late_campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    late_campaign.refresh_from_db()
    assert late_campaign.status == Campaign.Status.SENT
    assert len(smtp_server.wait_for(1)) == 1
    assert len(mailoutbox) == 1


def test_a_late_campaign_can_be_unscheduled_from_its_page(
    owner_client, late_campaign, campaign_page
) -> None:  # noqa: ANN001
    page = campaign_page(late_campaign)
    assert b"Unschedule" in page and b"Resume" in page
    response = owner_client.post(reverse("campaigns:unschedule", args=[late_campaign.uuid]))
    assert response.status_code == 302
    late_campaign.refresh_from_db()
    assert late_campaign.status == Campaign.Status.DRAFT


def test_a_started_paused_campaign_offers_no_unschedule(
    owner, relay, campaign_page, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.tick()  # started, nothing sent yet
    campaign.refresh_from_db()
    scheduling.pause(campaign)
    page = campaign_page(campaign)
    assert b"Resume" in page and b"Unschedule" not in page
