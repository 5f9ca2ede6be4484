from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from campaigns import freezing, links
from campaigns.models import Campaign
from lists import subscriptions
from sending.models import Delivery
from stats import drain, tracking
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory

BODY = (
    '<p>Hi {{ subscriber.name }}, read <a href="https://example.com/a">this</a> and '
    '<a href="https://example.com/b">that</a>. <a href="{{ web_version_url }}">Web</a></p>'
)


def _reset_buffer_client() -> None:
    tracking.buffer_client.cache_clear()
    tracking._redis_down_until[0] = 0.0
    tracking._links.clear()


@pytest.fixture(autouse=True)
def _fresh_tracking_state() -> Iterator[None]:
    _reset_buffer_client()
    yield
    _reset_buffer_client()


@pytest.fixture
def no_redis(settings) -> None:  # noqa: ANN001
    """The embedded default: no buffer, every hit written straight to the database."""
    settings.REDIS_URL = ""
    _reset_buffer_client()


@pytest.fixture
def redis_down(settings) -> None:  # noqa: ANN001
    """Redis configured but not answering (nothing listens on port 1)."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    _reset_buffer_client()


@pytest.fixture
def buffer() -> Iterator[object]:
    """The real Redis buffer, emptied before and after."""
    client = tracking.buffer_client()
    keys = (tracking.BUFFER_KEY, drain.PROCESSING_KEY, drain.CHUNK_KEY, drain.LOCK_KEY)
    client.delete(*keys)
    yield client
    client.delete(*keys)


def make_sent_campaign(
    owner, recipients: int = 3, sent_ago: timedelta = timedelta(hours=1), **list_options
):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner, **list_options)
    subs = [SubscriptionFactory(mailing_list=mailing_list).subscriber for _ in range(recipients)]
    subscriptions.recount([mailing_list.id])  # the factory writes rows directly
    campaign = CampaignFactory(account=owner, body=BODY, lists=[mailing_list])
    freezing.freeze(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    sent_at = timezone.now() - sent_ago
    deliveries = [
        Delivery.objects.create(campaign=campaign, subscriber=s, status="sent", sent_at=sent_at)
        for s in subs
    ]
    return SimpleNamespace(
        campaign=campaign,
        mailing_list=mailing_list,
        deliveries=deliveries,
        tokens=[links.tracking_token(campaign.pk, d.id) for d in deliveries],
    )


@pytest.fixture
def sent(owner):  # noqa: ANN001, ANN201
    return make_sent_campaign(owner)
