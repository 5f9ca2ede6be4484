"""The bounce pages of campaigns and lists, the subscriber page's bounce section, and lifting."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bounces import intake
from lists.models import ListRole, Subscription
from tests.bounces.returned import message, sent_to, verp_address

pytestmark = pytest.mark.django_db


@pytest.fixture
def bounced(owner):  # noqa: ANN001, ANN201
    """A campaign with one hard bounce, one soft bounce and one complaint."""
    ann = sent_to(owner, "ann@reader.example")
    bob = sent_to(owner, "bob@reader.example", campaign=ann.campaign, mailing_list=None)
    cat = sent_to(owner, "cat@reader.example", campaign=ann.campaign)
    for delivery, name in ((ann, "dsn_user_unknown.eml"), (bob, "dsn_mailbox_full.eml"),
                           (cat, "arf_complaint.eml")):  # fmt: skip
        raw = message(name, recipient=delivery.subscriber.email)
        intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    return ann


def list_of(delivery):  # noqa: ANN001, ANN201
    return Subscription.objects.get(subscriber=delivery.subscriber).mailing_list


def test_the_campaign_page_counts_by_class_and_reason_and_lists_addresses(
    owner_client, bounced
) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("bounces:campaign", args=[bounced.campaign.uuid]))

    assert response.status_code == 200
    summary = response.context["summary"]
    assert summary.total == 3
    assert {c: n for c, _, n in summary.by_class} == {"hard": 1, "soft": 1, "complaint": 1}
    assert ("Hard bounce", "5.1.1", 1) in summary.by_reason
    page = response.content.decode()
    assert "ann@reader.example" in page and "User unknown in virtual mailbox" in page


def test_the_campaign_page_filters_by_class(owner_client, bounced) -> None:  # noqa: ANN001
    url = reverse("bounces:campaign", args=[bounced.campaign.uuid])
    response = owner_client.get(url, {"class": "soft"})
    assert [e.recipient for e in response.context["page_obj"]] == ["bob@reader.example"]


def test_the_campaign_page_links_to_its_bounces(owner_client, bounced) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("campaigns:detail", args=[bounced.campaign.uuid]))
    assert reverse("bounces:campaign", args=[bounced.campaign.uuid]) in response.content.decode()


def test_a_stranger_gets_404_for_the_campaign_and_the_list(client, stranger, bounced) -> None:  # noqa: ANN001
    client.force_login(stranger)
    assert client.get(reverse("bounces:campaign", args=[bounced.campaign.uuid])).status_code == 404
    assert client.get(reverse("bounces:list", args=[list_of(bounced).uuid])).status_code == 404


def test_the_list_page_shows_only_that_lists_subscribers(owner_client, bounced) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("bounces:list", args=[list_of(bounced).uuid]))

    assert response.status_code == 200
    assert [e.recipient for e in response.context["page_obj"]] == ["ann@reader.example"]
    detail = owner_client.get(reverse("lists:detail", args=[list_of(bounced).uuid]))
    assert reverse("bounces:list", args=[list_of(bounced).uuid]) in detail.content.decode()


def test_a_viewer_of_the_list_can_read_its_bounces(client, delegate, bounced) -> None:  # noqa: ANN001
    url = reverse("bounces:list", args=[list_of(bounced).uuid])
    client.force_login(delegate)
    assert client.get(url).status_code == 404

    ListRole.objects.create(mailing_list=list_of(bounced), user=delegate, role="viewer")

    response = client.get(url)
    assert response.status_code == 200 and response.context["summary"].total == 1


def test_the_addresses_are_paginated(owner_client, owner) -> None:  # noqa: ANN001
    first = sent_to(owner, "r0@reader.example")
    deliveries = [first] + [
        sent_to(owner, f"r{n}@reader.example", campaign=first.campaign) for n in range(1, 53)
    ]
    for delivery in deliveries:
        raw = message("dsn_user_unknown.eml", recipient=delivery.subscriber.email)
        intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    url = reverse("bounces:campaign", args=[first.campaign.uuid])

    one, two = owner_client.get(url), owner_client.get(url, {"page": 2})

    assert len(one.context["page_obj"]) == 50 and len(two.context["page_obj"]) == 3
    assert one.context["summary"].total == 53


def test_the_subscriber_page_shows_why_the_address_was_suppressed(owner_client, bounced) -> None:  # noqa: ANN001
    url = reverse("lists:subscriber-detail", args=[bounced.subscriber.uuid])
    page = owner_client.get(url).content.decode()

    assert "Bounces and complaints" in page and "5.1.1" in page
    assert "User unknown in virtual mailbox" in page
    assert reverse("bounces:subscriber-lift", args=[bounced.subscriber.uuid]) in page


def test_the_owner_lifts_a_suppression_with_a_note(owner_client, owner, bounced) -> None:  # noqa: ANN001
    url = reverse("bounces:subscriber-lift", args=[bounced.subscriber.uuid])

    response = owner_client.post(url, {"note": "checked with the reader by phone"})

    assert response.status_code == 302
    subscription = Subscription.objects.get(subscriber=bounced.subscriber)
    assert subscription.status == "confirmed"
    change = subscription.changes.last()
    assert change.actor == owner and change.note.endswith("checked with the reader by phone")
    page = owner_client.get(response.url).content.decode()
    assert "suppression lifted: checked with the reader by phone" in page


def test_a_lift_without_a_note_changes_nothing(owner_client, bounced) -> None:  # noqa: ANN001
    url = reverse("bounces:subscriber-lift", args=[bounced.subscriber.uuid])
    owner_client.post(url, {"note": "  "})
    assert Subscription.objects.get(subscriber=bounced.subscriber).status == "bounced"


def test_only_the_account_owner_may_lift(client, delegate, stranger, bounced) -> None:  # noqa: ANN001
    url = reverse("bounces:subscriber-lift", args=[bounced.subscriber.uuid])
    ListRole.objects.create(mailing_list=list_of(bounced), user=delegate, role="manager")
    client.force_login(stranger)
    assert client.post(url, {"note": "x"}).status_code == 404
    client.force_login(delegate)
    assert client.post(url, {"note": "x"}).status_code == 403
    assert Subscription.objects.get(subscriber=bounced.subscriber).status == "bounced"
