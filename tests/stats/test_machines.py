"""Opens by privacy and image proxies, clicks by link scanners: flagged, counted apart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stats.models import CampaignStats, TrackingEvent
from tests.stats.conftest import make_sent_campaign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_redis")]

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def open_as(client, token: str, agent: str, ip: str) -> None:  # noqa: ANN001
    assert client.get(f"/t/o/{token}", HTTP_USER_AGENT=agent, REMOTE_ADDR=ip).status_code == 200


def test_apple_privacy_protection_and_image_proxies_are_machine_opens(client, sent) -> None:  # noqa: ANN001
    token = sent.tokens[0]
    open_as(client, token, "Mozilla/5.0", "17.58.63.10")  # Apple Mail Privacy Protection
    open_as(client, token, GMAIL, "66.102.8.1")
    open_as(client, token, "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy", "1.2.3.4")
    open_as(client, token, BROWSER, "17.58.63.10")  # a person at Apple, in a real browser
    open_as(client, token, "Mozilla/5.0", "198.51.100.7")  # bare agent, not Apple's network
    flags = list(TrackingEvent.objects.order_by("id").values_list("machine", "details__machine"))
    assert flags == [
        (True, "apple_privacy_protection"),
        (True, "google_image_proxy"),
        (True, "yahoo_image_proxy"),
        (False, None),
        (False, None),
    ]
    stats = CampaignStats.objects.get(campaign=sent.campaign)
    assert (stats.total_machine_opens, stats.unique_machine_opens) == (3, 1)
    assert (stats.total_human_opens, stats.unique_human_opens) == (2, 1)


def test_known_scanners_are_machine_clicks(client, sent) -> None:  # noqa: ANN001
    token = sent.tokens[0]
    client.get(f"/t/c/{token}/1", HTTP_USER_AGENT="Mozilla/5.0 BingPreview/1.0b")
    client.get(f"/t/c/{token}/1", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="205.139.110.30")
    client.get(f"/t/c/{token}/1", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.7")
    flags = list(TrackingEvent.objects.order_by("id").values_list("machine", "details__machine"))
    assert flags == [(True, "safe_links"), (True, "mimecast_network"), (False, None)]


def test_a_click_right_after_sending_is_a_scanner(client, owner) -> None:  # noqa: ANN001
    fresh = make_sent_campaign(owner, recipients=1, sent_ago=timedelta(seconds=2))
    client.get(f"/t/c/{fresh.tokens[0]}/1", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.7")
    event = TrackingEvent.objects.get()
    assert event.machine and event.details["machine"] == "clicked_right_after_sending"


def test_several_links_clicked_in_one_second_are_a_scanner(sent) -> None:  # noqa: ANN001
    from stats import drain, tracking

    delivery = sent.deliveries[0]
    at = 1_900_000_000.2
    hits = [
        tracking.Hit("c", sent.campaign.id, delivery.id, 1, at, BROWSER, "", ""),
        tracking.Hit("c", sent.campaign.id, delivery.id, 2, at + 0.5, BROWSER, "", ""),
        # Another recipient clicking one link in that second is a person.
        tracking.Hit("c", sent.campaign.id, sent.deliveries[1].id, 1, at, BROWSER, "", ""),
    ]
    assert drain.write_hits(hits) == 3
    flags = dict(TrackingEvent.objects.values_list("delivery_id", "machine").distinct())
    assert flags == {delivery.id: True, sent.deliveries[1].id: False}
    stats = CampaignStats.objects.get(campaign=sent.campaign)
    assert (stats.total_machine_clicks, stats.unique_machine_clicks) == (2, 1)
    assert (stats.total_human_clicks, stats.unique_human_clicks) == (1, 1)
