"""The subscriber page shows the latest deliveries and events, bounded, in a fixed number
of queries, and only what the viewer may see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Link
from lists import activity, subscriptions
from lists.access import grant
from lists.models import MailingList, Subscriber
from sending.models import Delivery
from stats.models import TrackingEvent
from tests.factories import CampaignFactory, MailingListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(owner) -> MailingList:  # noqa: ANN001
    return MailingListFactory(owner=owner, name="News")


@pytest.fixture
def ann(news) -> Subscriber:  # noqa: ANN001
    subscriber, _ = subscriptions.find_or_create_subscriber(news.owner, "ann@example.org")
    subscriptions.subscribe(news, subscriber, status="confirmed", source="panel")
    return subscriber


def sent(campaign, subscriber: Subscriber, minutes_ago: int = 0, clicks: int = 0) -> Delivery:  # noqa: ANN001
    """A delivery of the campaign, its "sent" event, and ``clicks`` clicks on its link 1."""
    at = timezone.now() - timedelta(minutes=minutes_ago)
    delivery = Delivery.objects.create(
        campaign=campaign, subscriber=subscriber, status="sent", sent_at=at
    )
    Link.objects.get_or_create(
        campaign=campaign, index=1, defaults={"url": "https://example.com/a"}
    )
    common = {
        "account_id": campaign.account_id,
        "campaign": campaign,
        "subscriber_id": subscriber.id,
        "mailing_list": campaign.lists.first(),
    }
    TrackingEvent.objects.create(occurred_at=at, kind="sent", **common)
    for n in range(clicks):
        TrackingEvent.objects.create(
            occurred_at=at + timedelta(seconds=n + 1), kind="clicked", link_index=1, **common
        )
    return delivery


def detail(client, subscriber: Subscriber) -> str:  # noqa: ANN001
    response = client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_deliveries_with_links_to_their_statistics(owner_client, owner, news, ann):
    spring = CampaignFactory(account=owner, name="Spring issue", lists=[news])
    sent(spring, ann, clicks=1)

    page = detail(owner_client, ann)

    assert "Spring issue" in page and "Sent" in page
    assert reverse("stats:campaign", args=[spring.uuid]) in page
    assert "Clicked" in page and "https://example.com/a" in page
    assert reverse("stats:subscriber", args=[ann.uuid]) in page


def test_only_the_latest_are_shown_with_a_link_to_the_full_timeline(owner_client, owner, news, ann):
    for n in range(activity.SHOWN + 2):
        sent(CampaignFactory(account=owner, name=f"Issue {n:02}", lists=[news]), ann, 100 - n)

    page = detail(owner_client, ann)
    shown = activity.recent(ann, None)

    assert len(shown.deliveries) == activity.SHOWN and shown.more_deliveries
    assert len(shown.events) == activity.SHOWN and shown.more_events
    assert "Issue 11" in page and "Issue 02" in page and "Issue 01" not in page
    assert f"The latest {activity.SHOWN} are shown" in page and "Older events" in page


def test_the_page_takes_the_same_queries_for_one_row_as_for_many(
    owner_client, owner, news, ann, django_assert_num_queries
):
    sent(CampaignFactory(account=owner, lists=[news]), ann, clicks=1)
    with CaptureQueriesContext(connection) as one:
        detail(owner_client, ann)
    for n in range(activity.SHOWN + 3):
        sent(CampaignFactory(account=owner, lists=[news]), ann, n + 1, clicks=2)

    with django_assert_num_queries(len(one.captured_queries)):
        detail(owner_client, ann)


def test_another_accounts_campaigns_never_show(owner_client, stranger, ann):
    foreign = CampaignFactory(account=stranger, name="Not yours")
    sent(foreign, ann)

    page = detail(owner_client, ann)

    assert "Not yours" not in page and "No campaign has been sent to this address yet." in page


def test_a_delegate_sees_only_what_went_to_the_granted_list(client, owner, delegate, news, ann):
    offers = MailingListFactory(owner=owner, name="Offers")
    subscriptions.subscribe(offers, ann, status="confirmed", source="panel")
    sent(CampaignFactory(account=owner, name="News issue", lists=[news]), ann, 5)
    sent(CampaignFactory(account=owner, name="Offer issue", lists=[offers]), ann, 1)
    grant(news, delegate, "viewer", granted_by=owner)
    client.force_login(delegate)

    page = detail(client, ann)

    assert "News issue" in page and "Offer issue" not in page
    # Campaign statistics are the owner's: no link a delegate would find a 404 behind.
    assert "/stats/campaigns/" not in page


def test_a_subscriber_with_nothing_sent_says_so(owner_client, ann):
    page = detail(owner_client, ann)
    assert "No campaign has been sent to this address yet." in page
    assert "Nothing recorded yet" in page
