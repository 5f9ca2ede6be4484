"""The public open pixel and click redirect: tokens, stored links only, no 500s, privacy."""

from __future__ import annotations

import json

import pytest
from django.core.signing import Signer

from campaigns import freezing, links
from campaigns.models import Link
from lists.forms import MailingListForm
from stats.models import TrackingEvent
from tests.factories import CampaignFactory, MailingListFactory
from tests.stats.conftest import make_sent_campaign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_redis")]


def test_the_pixel_is_a_transparent_gif_that_is_never_cached(client, sent) -> None:  # noqa: ANN001
    response = client.get(f"/t/o/{sent.tokens[0]}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert len(response.content) == 43 and response.content.startswith(b"GIF89a")
    assert "no-store" in response["Cache-Control"] and response["Pragma"] == "no-cache"
    event = TrackingEvent.objects.get(kind="opened")
    assert (event.delivery_id, event.campaign_id) == (sent.deliveries[0].id, sent.campaign.id)


def test_a_click_redirects_to_the_stored_link_of_its_index(client, sent) -> None:  # noqa: ANN001
    response = client.get(f"/t/c/{sent.tokens[1]}/2?url=https://evil.example/&next=//evil.example")
    assert response.status_code == 302
    assert response["Location"] == "https://example.com/b"
    event = TrackingEvent.objects.get(kind="clicked")
    assert (event.delivery_id, event.link_index) == (sent.deliveries[1].id, 2)


def test_an_index_the_campaign_does_not_have_gets_a_page_and_no_redirect(client, sent) -> None:  # noqa: ANN001
    for index in (0, 3, 99999):
        response = client.get(f"/t/c/{sent.tokens[0]}/{index}")
        assert response.status_code == 404
        assert "Location" not in response
        assert b"This link is not valid" in response.content
    assert not TrackingEvent.objects.exists()


def tampered_tokens(sent) -> list[str]:  # noqa: ANN001
    token = sent.tokens[0]
    value, _, signature = token.rpartition(":")
    other_delivery = f"{sent.campaign.id}.{sent.deliveries[1].id}"
    return [
        f"{other_delivery}:{signature}",  # someone else's delivery with this signature
        f"{value}:{signature[:-1]}A" if signature[-1] != "A" else f"{value}:{signature[:-1]}B",
        Signer(salt="mailpanel.unsubscribe").sign(value),  # another of our signers
        Signer(key="not-our-secret", salt=links.TRACKING_SALT).sign(value),  # another site
        value,
        "",
        "x" * 5000,
        "1.2:" + "%00",
    ]


def test_tampered_and_foreign_tokens_get_a_page_on_both_endpoints(client, sent) -> None:  # noqa: ANN001
    for token in tampered_tokens(sent):
        for path in (f"/t/o/{token}", f"/t/c/{token}/1"):
            response = client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code)
            assert "Location" not in response
            assert b"Traceback" not in response.content
    # The genuine token still works: the refusals above were for the tampering.
    assert client.get(f"/t/c/{sent.tokens[0]}/1").status_code == 302
    assert TrackingEvent.objects.count() == 1


def test_a_head_request_is_answered_but_not_counted(client, sent) -> None:  # noqa: ANN001
    assert client.head(f"/t/o/{sent.tokens[0]}").status_code == 200
    assert client.head(f"/t/c/{sent.tokens[0]}/1").status_code == 302
    assert not TrackingEvent.objects.exists()


@pytest.mark.parametrize(
    ("mode", "stored"),
    [("truncate", "203.0.113.0/24"), ("hash", None), ("none", "")],
)
def test_the_address_is_never_stored_in_clear(client, sent, settings, mode, stored) -> None:  # noqa: ANN001
    settings.STATS_IP_MODE = mode
    client.get(f"/t/o/{sent.tokens[0]}", REMOTE_ADDR="203.0.113.77")
    client.get(f"/t/o/{sent.tokens[0]}", REMOTE_ADDR="2001:db8:1234:5678::1")
    events = list(TrackingEvent.objects.order_by("id"))
    assert len(events) == 2
    for event in events:
        raw = json.dumps(event.details)
        assert "203.0.113.77" not in raw and "2001:db8:1234:5678" not in raw
    if mode == "hash":
        assert len(events[0].details["ip"]) == 24
    elif stored:
        assert events[0].details["ip"] == stored
        assert events[1].details["ip"] == "2001:db8:1234::/48"
    else:
        assert "ip" not in events[0].details


def test_the_web_version_counts_as_an_open_with_the_recipients_token(client, sent) -> None:  # noqa: ANN001
    page = f"/c/{sent.campaign.uuid}/"
    assert client.get(page).status_code == 200
    assert not TrackingEvent.objects.exists()
    other = make_sent_campaign(sent.campaign.account)
    assert client.get(page, {"t": other.tokens[0]}).status_code == 200  # another campaign's
    assert client.get(page, {"t": "forged"}).status_code == 200
    assert not TrackingEvent.objects.exists()
    assert client.get(page, {"t": sent.tokens[2]}).status_code == 200
    event = TrackingEvent.objects.get()
    assert (event.kind, event.delivery_id) == ("opened", sent.deliveries[2].id)
    assert event.details["via"] == "web_version"


def test_the_merge_puts_the_recipients_token_in_the_web_version_link(sent) -> None:  # noqa: ANN001
    from campaigns import merge

    sent.campaign.refresh_from_db()
    frozen = merge.load_frozen(sent.campaign)
    recipient = {
        "subscriber": {"id": 1, "name": "A", "email": "a@example.org", "fields": {}},
        "list": {"id": sent.mailing_list.id, "name": "L"},
        "recipient_id": sent.deliveries[0].id,
    }
    html = merge.merge(frozen, recipient)[1]
    assert f"/c/{sent.campaign.uuid.hex}/?t={sent.tokens[0]}" in html
    preview = merge.merge(frozen, {**recipient, "tracking_token": ""})[1]
    assert "?t=" not in preview


def test_lists_with_tracking_off_get_no_pixel_and_no_tracked_links(owner) -> None:  # noqa: ANN001
    quiet = MailingListFactory(owner=owner, track_opens=False, track_clicks=False)
    also_quiet = MailingListFactory(owner=owner, track_opens=False, track_clicks=False)
    campaign = CampaignFactory(account=owner, lists=[quiet, also_quiet])
    freezing.freeze(campaign)
    assert "tracking." not in campaign.frozen_html
    assert 'href="https://example.com/a"' in campaign.frozen_html
    assert not Link.objects.filter(campaign=campaign).exists()
    # With one list that tracks, the frozen document keeps its tracking; the sending
    # engine leaves it out for each recipient on a list without it
    # (tests/sending/test_tracking_per_recipient.py).
    loud = MailingListFactory(owner=owner)
    tracked = CampaignFactory(account=owner, lists=[quiet, loud])
    freezing.freeze(tracked)
    assert (
        "{{ tracking.open }}" in tracked.frozen_html and "{{ tracking.l1 }}" in tracked.frozen_html
    )


def test_the_list_settings_form_has_the_tracking_switches(owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    form = MailingListForm(
        {"name": "Quiet", "from_name": "", "from_email": "", "reply_to": "", "track_clicks": "on"},
        instance=mailing_list,
    )
    assert form.is_valid(), form.errors
    form.save()
    mailing_list.refresh_from_db()
    assert (mailing_list.track_opens, mailing_list.track_clicks) == (False, True)
