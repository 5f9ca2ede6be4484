"""The statistics pages: tenancy, what they show, the click map's sandbox, the charts."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lists.models import ListRole
from stats import charts
from stats.models import CampaignDomainStats, ListDailyStats, TrackingEvent
from tests.factories import MailingListFactory, SubscriptionFactory
from tests.stats.dashboard_data import event, fill_rollups, sent_campaign

CAMPAIGN_PAGES = ["stats:campaign", "stats:campaign-links", "stats:campaign-links-document",
                  "stats:campaign-bounces"]  # fmt: skip


@pytest.fixture
def world(owner, delegate):  # noqa: ANN001, ANN201
    """The owner's shared list (delegated as viewer), a private list, a sent campaign."""
    shared = MailingListFactory(owner=owner, name="Shared news")
    private = MailingListFactory(owner=owner, name="Private news")
    ListRole.objects.create(mailing_list=shared, user=delegate, role="viewer")
    campaign = sent_campaign(owner, lists=[shared])
    fill_rollups(campaign)
    return {"shared": shared, "private": private, "campaign": campaign}


# --- Tenancy ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", CAMPAIGN_PAGES)
def test_owner_opens_campaign_pages_and_stranger_gets_404(
    client, world, owner, stranger, name
) -> None:  # noqa: ANN001, E501
    url = reverse(name, args=[world["campaign"].uuid])
    client.force_login(owner)
    assert client.get(url).status_code == 200
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_delegate_gets_404_for_the_owners_campaign_statistics(client, world, delegate) -> None:  # noqa: ANN001
    # Campaigns are the owner's alone, even when sent to a list the delegate may see.
    client.force_login(delegate)
    assert client.get(reverse("stats:campaign", args=[world["campaign"].uuid])).status_code == 404


@pytest.mark.django_db
def test_delegate_sees_stats_of_granted_lists_only(
    client, world, owner, delegate, stranger
) -> None:  # noqa: ANN001, E501
    shared = reverse("stats:list", args=[world["shared"].uuid])
    private = reverse("stats:list", args=[world["private"].uuid])
    client.force_login(owner)
    assert client.get(shared).status_code == 200
    assert client.get(private).status_code == 200
    client.force_login(delegate)
    response = client.get(shared)
    assert response.status_code == 200
    assert world["campaign"].name not in response.content.decode()
    assert client.get(private).status_code == 404
    client.force_login(stranger)
    assert client.get(shared).status_code == 404


@pytest.mark.django_db
def test_stranger_gets_404_for_a_subscriber_timeline(client, world, owner, stranger) -> None:  # noqa: ANN001
    subscriber = SubscriptionFactory(mailing_list=world["private"]).subscriber
    url = reverse("stats:subscriber", args=[subscriber.uuid])
    client.force_login(owner)
    assert client.get(url).status_code == 200
    client.force_login(stranger)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_delegate_timeline_shows_only_events_of_granted_lists(
    client, world, owner, delegate
) -> None:  # noqa: ANN001, E501
    subscriber = SubscriptionFactory(mailing_list=world["shared"]).subscriber
    SubscriptionFactory(mailing_list=world["private"], subscriber=subscriber)
    common = {
        "account_id": owner.id,
        "subscriber_id": subscriber.id,
        "campaign_id": world["campaign"].id,
    }
    TrackingEvent.objects.bulk_create(
        [
            event(
                "opened",
                mailing_list_id=world["shared"].id,
                recipient_domain="shared.example",
                **common,
            ),
            event(
                "clicked",
                mailing_list_id=world["private"].id,
                recipient_domain="private.example",
                **common,
            ),
        ]
    )
    url = reverse("stats:subscriber", args=[subscriber.uuid])
    client.force_login(owner)
    owner_page = client.get(url).content.decode()
    assert "Opened" in owner_page and "Clicked" in owner_page
    client.force_login(delegate)
    delegate_page = client.get(url).content.decode()
    assert "Opened" in delegate_page
    assert "Clicked" not in delegate_page


@pytest.mark.django_db
def test_stats_pages_require_login(client, world) -> None:  # noqa: ANN001
    for url in [
        reverse("stats:index"),
        reverse("stats:campaign", args=[world["campaign"].uuid]),
        reverse("stats:list", args=[world["shared"].uuid]),
        reverse("stats:report-index"),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


# --- The campaign page ----------------------------------------------------------------------


@pytest.mark.django_db
def test_key_numbers_show_human_and_machine_opens_separately(client, world, owner) -> None:  # noqa: ANN001
    client.force_login(owner)
    page = client.get(reverse("stats:campaign", args=[world["campaign"].uuid])).content.decode()
    assert "Opened by people" in page and "25.0%" in page  # 245 of 980
    assert "Opened by machines" in page and "30.6%" in page  # 300 of 980
    assert "5.0%" in page  # 49 people clicked
    assert "<svg" in page and "first 48 hours" in page
    assert "mail0.example.net" in page


@pytest.mark.django_db
def test_key_numbers_page_runs_the_same_queries_whatever_the_size(
    client, world, owner, django_assert_num_queries
) -> None:  # noqa: ANN001, E501
    client.force_login(owner)
    url = reverse("stats:campaign", args=[world["campaign"].uuid])
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    CampaignDomainStats.objects.bulk_create(
        CampaignDomainStats(campaign=world["campaign"], domain=f"more{i}.example", sent=i)
        for i in range(300)
    )
    with django_assert_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200
    logged = " ".join(q["sql"] for q in small.captured_queries).lower()
    assert "stats_trackingevent" not in logged and "sending_delivery" not in logged


@pytest.mark.django_db
def test_click_map_annotates_each_link_and_is_served_sandboxed(client, world, owner) -> None:  # noqa: ANN001
    client.force_login(owner)
    page = client.get(
        reverse("stats:campaign-links", args=[world["campaign"].uuid])
    ).content.decode()
    assert " sandbox " in page or " sandbox src" in page
    assert "allow-scripts" not in page and "allow-same-origin" not in page
    document = client.get(reverse("stats:campaign-links-document", args=[world["campaign"].uuid]))
    csp = document["Content-Security-Policy"]
    assert csp.startswith("sandbox")
    html = document.content.decode()
    assert "#1: 56 clicks · 80%" in html
    assert "#2: 14 clicks · 20%" in html
    assert "https://example.com/a" in html


@pytest.mark.django_db
def test_campaign_page_says_what_to_do_when_nothing_was_sent(client, owner) -> None:  # noqa: ANN001
    campaign = sent_campaign(owner)
    client.force_login(owner)
    page = client.get(reverse("stats:campaign", args=[campaign.uuid])).content.decode()
    assert "Nothing has been sent yet" in page
    assert "No opens or clicks yet" in page


@pytest.mark.django_db
def test_campaign_detail_links_to_its_statistics(client, world, owner) -> None:  # noqa: ANN001
    client.force_login(owner)
    page = client.get(reverse("campaigns:detail", args=[world["campaign"].uuid])).content.decode()
    assert reverse("stats:campaign", args=[world["campaign"].uuid]) in page


@pytest.mark.django_db
def test_bounces_page_groups_unsubscribe_reasons(client, world, owner) -> None:  # noqa: ANN001
    TrackingEvent.objects.bulk_create(
        event("unsubscribed", account_id=owner.id, campaign_id=world["campaign"].id,
              details={"reason": reason})
        for reason in ["Too many mails", "Too many mails", ""]
    )  # fmt: skip
    client.force_login(owner)
    page = client.get(
        reverse("stats:campaign-bounces", args=[world["campaign"].uuid])
    ).content.decode()
    assert 'Too many mails</td><td class="num">2' in page
    assert "(no reason given)" in page


# --- Overview, list, timeline ------------------------------------------------------------------


@pytest.mark.django_db
def test_overview_lists_recent_campaigns_and_list_growth(client, world, owner, stranger) -> None:  # noqa: ANN001
    today = timezone.localdate()
    ListDailyStats.objects.bulk_create(
        ListDailyStats(mailing_list=world["shared"], day=today - datetime.timedelta(days=i),
                       subscribed=3, confirmed=2, unsubscribed=1, size=100 - i)
        for i in range(5)
    )  # fmt: skip
    client.force_login(owner)
    page = client.get(reverse("stats:index")).content.decode()
    assert world["campaign"].name in page
    assert "25.0%" in page
    assert "<svg" in page and "Subscribers on your lists" in page
    client.force_login(stranger)
    page = client.get(reverse("stats:index")).content.decode()
    assert world["campaign"].name not in page
    assert "No campaign has been sent yet" in page


@pytest.mark.django_db
def test_list_page_charts_growth_per_day(client, world, owner) -> None:  # noqa: ANN001
    today = timezone.localdate()
    ListDailyStats.objects.create(
        mailing_list=world["shared"], day=today, subscribed=4, confirmed=3, unsubscribed=1, size=42
    )
    client.force_login(owner)
    page = client.get(reverse("stats:list", args=[world["shared"].uuid])).content.decode()
    assert page.count("<svg") == 3
    assert "List size per day" in page
    assert world["campaign"].name in page  # the owner sees the list's campaigns
    # Its engagement as a picture too: 245 and 49 people of 980 sent.
    assert "Opened and clicked by people, per cent of those sent to</title>" in page
    assert ": Opened 25</title>" in page and ": Clicked 5</title>" in page


@pytest.mark.django_db
def test_timeline_is_newest_first_in_keyset_pages(client, world, owner) -> None:  # noqa: ANN001
    subscriber = SubscriptionFactory(mailing_list=world["shared"]).subscriber
    start = timezone.now() - datetime.timedelta(days=1)
    TrackingEvent.objects.bulk_create(
        event("sent", at=start + datetime.timedelta(minutes=i), account_id=owner.id,
              subscriber_id=subscriber.id, recipient_domain=f"d{i}.example")
        for i in range(60)
    )  # fmt: skip
    client.force_login(owner)
    url = reverse("stats:subscriber", args=[subscriber.uuid])
    first = client.get(url)
    rows = first.context["page_obj"].rows
    assert len(rows) == 50
    assert rows[0].occurred_at > rows[-1].occurred_at
    second = client.get(first.context["page_obj"].next_url)
    older = second.context["page_obj"].rows
    assert len(older) == 10
    assert older[0].occurred_at < rows[-1].occurred_at
    back = client.get(second.context["page_obj"].previous_url).context["page_obj"].rows
    assert [e.id for e in back] == [e.id for e in rows]


@pytest.mark.django_db
def test_subscriber_and_list_pages_link_to_statistics(client, world, owner) -> None:  # noqa: ANN001
    subscriber = SubscriptionFactory(mailing_list=world["shared"]).subscriber
    client.force_login(owner)
    page = client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid])).content.decode()
    assert reverse("stats:subscriber", args=[subscriber.uuid]) in page
    page = client.get(reverse("lists:detail", args=[world["shared"].uuid])).content.decode()
    assert reverse("stats:list", args=[world["shared"].uuid]) in page


# --- Charts ------------------------------------------------------------------------------------


def test_chart_escapes_every_text_and_has_an_accessible_title() -> None:
    svg = str(
        charts.line_chart(
            "Opens <script>", ["<b>1</b>", "2"], [charts.Series('x"><script>', [1, 5])]
        )
    )
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert "<title" in svg and "Opens &lt;script&gt;</title>" in svg
    assert "<script" not in svg
    assert "&lt;b&gt;1&lt;/b&gt;" in svg
    assert "<polyline" in svg


def test_bar_chart_draws_one_bar_per_value_with_its_number() -> None:
    svg = str(charts.bar_chart("Joined", ["Mon", "Tue"], [charts.Series("New", [3, 0])]))
    assert svg.count("<rect") == 1 + 2  # the legend's square and two bars
    assert "Mon: New 3</title>" in svg


def test_axis_ticks_are_round_numbers_covering_the_largest_value() -> None:
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    ticks = charts.nice_ticks(980)
    assert ticks[-1] >= 980 and all(t % 100 == 0 for t in ticks)
