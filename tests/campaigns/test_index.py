"""The campaign index: audience sizes that agree with the detail page, real progress from
the stats rollup in a constant number of queries, and the link to the public archive."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns import preview, scheduling
from campaigns.models import Campaign
from sending.models import SendBatch
from stats.models import CampaignStats
from tests.factories import (
    BlocklistEntryFactory,
    CampaignFactory,
    MailingListFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


def started_campaign(owner, planned: list[int], **stats: int) -> Campaign:  # noqa: ANN001
    """A campaign that is sending, with batches of the given sizes and its rollup."""
    mailing_list = MailingListFactory(owner=owner)
    campaign = CampaignFactory(account=owner, lists=[mailing_list])
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    now = timezone.now()
    for i, size in enumerate(planned):
        SendBatch.objects.create(
            campaign=campaign,
            first_subscriber_id=i * 100,
            last_subscriber_id=i * 100 + 99,
            size=size,
            release_at=now,
        )
    if stats:
        CampaignStats.objects.create(campaign=campaign, **stats)
    return campaign


def index_row(page: str, campaign: Campaign) -> str:
    rows = re.findall(r"<tr>.*?</tr>", page, re.DOTALL)
    return next(row for row in rows if str(campaign.uuid) in row)


def test_progress_shows_sent_of_planned_recipients_with_a_bar(owner_client, owner) -> None:  # noqa: ANN001
    # A retry batch (size 0) is not more audience.
    campaign = started_campaign(owner, [3, 2, 0], sent=3, failed=1)
    row = index_row(owner_client.get(reverse("campaigns:index")).content.decode(), campaign)
    assert "3 / 5 sent" in row and "1 failed" in row
    assert '<progress max="5" value="4"' in row
    assert "planned" in row


def test_audience_of_a_draft_counts_each_subscriber_once_like_the_detail_page(
    owner_client,
    owner,  # noqa: ANN001
) -> None:
    first, second = MailingListFactory(owner=owner), MailingListFactory(owner=owner)
    both = SubscriptionFactory(mailing_list=first).subscriber
    SubscriptionFactory(mailing_list=second, subscriber=both)
    blocked = SubscriptionFactory(mailing_list=second).subscriber
    BlocklistEntryFactory(account=owner, value=blocked.email.lower())
    # The lists' own counters say 2 + 2: summing them was the old, wrong audience.
    for mailing_list in (first, second):
        mailing_list.confirmed_count = 2
        mailing_list.save()
    response = owner_client.post(
        reverse("campaigns:create"),
        {
            "name": "Both lists",
            "subject": "Hi",
            "body_format": "html",
            "body": "<p>Hi</p>",
            "lists": [first.pk, second.pk],
            "track_opens": "on",
        },
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Both lists")
    detail = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid]))
    assert detail.context["recipient_count"] == 1
    row = index_row(owner_client.get(reverse("campaigns:index")).content.decode(), campaign)
    assert re.search(r'<td class="num">1<br>', row), row


def test_audience_is_counted_again_when_the_draft_is_saved(owner_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    campaign = CampaignFactory(account=owner, lists=[mailing_list])
    SubscriptionFactory.create_batch(2, mailing_list=mailing_list)
    owner_client.post(
        reverse("campaigns:edit", args=[campaign.uuid]),
        {
            "name": campaign.name,
            "subject": "s",
            "body_format": "html",
            "body": "<p>x</p>",
            "lists": [mailing_list.pk],
        },
    )
    campaign.refresh_from_db()
    assert campaign.audience_size == 2


def test_audience_of_a_started_campaign_is_the_planned_recipients_on_both_pages(
    owner_client,
    owner,  # noqa: ANN001
) -> None:
    campaign = started_campaign(owner, [4, 3])
    # Subscribers who joined after sending started are not its audience.
    SubscriptionFactory.create_batch(2, mailing_list=campaign.lists.get())
    detail = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid]))
    assert detail.context["recipient_count"] == 7
    row = index_row(owner_client.get(reverse("campaigns:index")).content.decode(), campaign)
    assert "0 / 7 sent" in row


def test_index_reads_a_constant_number_of_queries(
    owner_client,
    owner,
    django_assert_num_queries,  # noqa: ANN001
) -> None:
    url = reverse("campaigns:index")
    started_campaign(owner, [5], sent=2)
    owner_client.get(url)  # sessions and starting templates settle
    with CaptureQueriesContext(connection) as one:
        owner_client.get(url)
    for n in range(6):
        started_campaign(owner, [10, n], sent=n, unknown=1)
        CampaignFactory(account=owner, lists=[MailingListFactory(owner=owner)])
    with django_assert_num_queries(len(one.captured_queries)):
        page = owner_client.get(url)
    assert page.content.decode().count("<progress") == 7


def test_index_and_campaign_form_show_the_archive_link(owner_client, owner, client) -> None:  # noqa: ANN001
    archive_url = preview.archive_url(owner.pk)
    for url in (reverse("campaigns:index"), reverse("campaigns:create")):
        page = owner_client.get(url).content.decode()
        assert f'value="{archive_url}"' in page, url
        assert 'data-copy-target="archive-url"' in page
        assert "js/copy.js" in page
        # Content-Security-Policy: scripts come from files only (JSON data blocks aside).
        assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/json))[^>]*>", page)
    campaign = started_campaign(owner, [1])
    Campaign.objects.filter(pk=campaign.pk).update(publish_in_archive=True)
    scheduling.finish(campaign)
    # The link leads to the archive the checkbox publishes in.
    archive = client.get(urlsplit(archive_url).path)
    assert archive.status_code == 200
    assert str(campaign.uuid) in archive.content.decode()
