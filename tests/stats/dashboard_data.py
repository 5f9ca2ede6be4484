"""Rows of the event log and its rollups written directly, as the drain would leave them."""

from __future__ import annotations

import datetime

from django.utils import timezone

from campaigns import freezing
from campaigns.models import Campaign
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    LinkStats,
    TrackingEvent,
)
from tests.factories import CampaignFactory

BODY = (
    '<p>Read <a href="https://example.com/a">the story</a> and '
    '<a href="https://example.com/b">the other one</a>.</p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


def sent_campaign(account: object, lists: list | None = None, **fields: object) -> Campaign:
    """A frozen campaign that started sending two days ago, with its links numbered."""
    campaign = CampaignFactory(account=account, body=BODY, lists=lists or [], **fields)
    freezing.freeze(campaign)
    started = timezone.now().replace(minute=0, second=0, microsecond=0) - datetime.timedelta(days=2)
    Campaign.objects.filter(pk=campaign.pk).update(status="sent", started_at=started)
    campaign.refresh_from_db()
    return campaign


def fill_rollups(campaign: Campaign, *, domains: int = 3, hours: int = 5) -> CampaignStats:
    stats = CampaignStats.objects.create(
        campaign=campaign,
        recipients=1000,
        sent=980,
        failed=15,
        unknown=5,
        unique_human_opens=245,
        total_human_opens=400,
        unique_machine_opens=300,
        total_machine_opens=310,
        unique_human_clicks=49,
        total_human_clicks=70,
        hard_bounces=8,
        soft_bounces=4,
        sender_side_bounces=2,
        complaints=1,
        unsubscribes=7,
    )
    LinkStats.objects.bulk_create(
        [
            LinkStats(
                campaign=campaign, link_index=1, unique_human_clicks=40, total_human_clicks=56
            ),
            LinkStats(
                campaign=campaign, link_index=2, unique_human_clicks=9, total_human_clicks=14
            ),
        ]
    )
    CampaignHourlyStats.objects.bulk_create(
        CampaignHourlyStats(
            campaign=campaign,
            hour=campaign.started_at + datetime.timedelta(hours=i),
            human_opens=100 - 10 * i,
            machine_opens=50,
            human_clicks=10 - i,
        )
        for i in range(hours)
    )
    CampaignDomainStats.objects.bulk_create(
        CampaignDomainStats(
            campaign=campaign,
            domain=f"mail{i}.example.net",
            sent=500 - i,
            failed=i,
            bounced=i,
            unique_human_opens=100 + i,
        )
        for i in range(domains)
    )
    return stats


def event(kind: str, *, at: datetime.datetime | None = None, **fields: object) -> TrackingEvent:
    return TrackingEvent(kind=kind, occurred_at=at or timezone.now(), **fields)
