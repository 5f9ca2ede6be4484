"""Events other apps record: sends, bounces, unsubscribes; and the per-list daily rollup."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bounces import intake
from campaigns import scheduling
from campaigns.models import Campaign
from lists import preferences, subscriptions
from mailpanel.lib import signing
from sending import dispatch
from sending.models import Relay
from stats import rollups
from stats.models import CampaignDomainStats, CampaignStats, ListDailyStats, TrackingEvent
from tests.factories import MailingListFactory, SubscriptionFactory
from tests.stats.conftest import make_sent_campaign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_redis")]


@pytest.mark.usefixtures("celery_eager")
def test_the_send_pipeline_logs_each_sent_message_and_counts_it(
    owner, smtp_server, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    Relay.objects.create(name="loopback", host=smtp_server.host, port=smtp_server.port,
                         security="none", rate_per_second=1000)  # fmt: skip
    mailing_list = MailingListFactory(owner=owner)
    for _ in range(6):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = Campaign.objects.create(
        account=owner, name="Launch", subject="Hi", from_email="news@example.com",
        body="<p>Hi</p>", body_format="html",
    )  # fmt: skip
    campaign.lists.set([mailing_list])
    scheduling.schedule(campaign)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.tick()
    smtp_server.wait_for(6)
    sent = TrackingEvent.objects.filter(campaign=campaign, kind="sent")
    assert sent.count() == 6
    assert set(sent.values_list("mailing_list_id", flat=True)) == {mailing_list.id}
    assert CampaignStats.objects.get(campaign=campaign).sent == 6
    assert CampaignDomainStats.objects.get(campaign=campaign, domain="example.org").sent == 6


def test_a_refused_delivery_is_counted_as_a_bounce_of_its_class(owner) -> None:  # noqa: ANN001
    sent = make_sent_campaign(owner, recipients=1)
    delivery = sent.deliveries[0]
    event = intake.record_smtp_failure(delivery, 550, "550 5.1.1 <x@example.org>: user unknown")
    logged = TrackingEvent.objects.get(kind="bounced")
    assert logged.details["bounce_class"] == event.bounce_class
    assert (logged.delivery_id, logged.campaign_id) == (delivery.id, sent.campaign.id)
    stats = CampaignStats.objects.get(campaign=sent.campaign)
    counter = rollups.BOUNCE_COUNTERS[event.bounce_class]
    assert getattr(stats, counter) == 1


def test_an_unsubscribe_through_the_campaign_link_is_counted_for_it(owner) -> None:  # noqa: ANN001
    sent = make_sent_campaign(owner, recipients=1)
    subscriber = sent.deliveries[0].subscriber
    token = signing.unsubscribe_token(subscriber.id, sent.mailing_list.id, sent.campaign.id)
    preferences.unsubscribe(token, reason="too often")
    preferences.unsubscribe(token)  # again: already unsubscribed, nothing more
    event = TrackingEvent.objects.get(kind="unsubscribed")
    assert (event.campaign_id, event.mailing_list_id) == (sent.campaign.id, sent.mailing_list.id)
    assert event.details["reason"] == "too often"
    assert CampaignStats.objects.get(campaign=sent.campaign).unsubscribes == 1


def test_an_event_of_a_deleted_campaign_does_not_break_the_caller(owner) -> None:  # noqa: ANN001
    sent = make_sent_campaign(owner, recipients=1)
    subscriber = sent.deliveries[0].subscriber
    token = signing.unsubscribe_token(subscriber.id, sent.mailing_list.id, sent.campaign.id)
    Campaign.objects.filter(pk=sent.campaign.pk).delete()
    preferences.unsubscribe(token)
    assert TrackingEvent.objects.filter(kind="unsubscribed").count() == 1
    assert not CampaignStats.objects.exists()


def test_list_rollups_count_the_day_in_a_few_queries(owner, django_assert_max_num_queries) -> None:  # noqa: ANN001
    lists = [MailingListFactory(owner=owner) for _ in range(3)]
    for mailing_list in lists:
        subs = [SubscriptionFactory(mailing_list=mailing_list, confirmed_at=timezone.now())
                for _ in range(4)]  # fmt: skip
        subscriptions.recount([mailing_list.id])  # the factory writes rows directly
        subscriptions.unsubscribe(subs[0], source="form")
        subscriptions.change_status(subs[1], "bounced", source="bounce")
    today = timezone.localdate()
    with django_assert_max_num_queries(6):
        assert rollups.roll_up_lists(today) == 3
    rollups.roll_up_lists(today)  # again: replaced, not added
    row = ListDailyStats.objects.get(mailing_list=lists[0], day=today)
    assert (row.subscribed, row.confirmed, row.unsubscribed, row.bounced, row.size) == (
        4, 4, 1, 1, 2,
    )  # fmt: skip
