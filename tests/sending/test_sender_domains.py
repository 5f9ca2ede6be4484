"""Campaigns send only from verified sending domains when REQUIRE_VERIFIED_SENDER_DOMAIN
is on (the production default); with it off, any of the account's addresses will do."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from campaigns import scheduling
from campaigns.forms import CampaignForm, sender_addresses
from campaigns.merge import MergeError
from sending import checks, domains
from tests.factories import CampaignFactory, MailingListFactory

pytestmark = pytest.mark.django_db


def verified(name: str, account: object | None) -> None:
    row = domains.create(name, account=account)
    row.verified_at = timezone.now()
    row.save()


@pytest.fixture
def campaign(owner):  # noqa: ANN001, ANN201
    # The owner's default address is olivia@example.com; the list sends from the other one.
    mailing_list = MailingListFactory(owner=owner, from_email="news@lists.example.net")
    return CampaignFactory(account=owner, lists=[mailing_list], from_email="olivia@example.com")


@pytest.mark.parametrize("required", [True, False])
def test_the_form_offers_only_verified_addresses_when_required(
    owner, stranger, campaign, settings, required: bool
) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = required
    verified("lists.example.net", owner)
    verified("example.com", stranger)  # another account's verification does not count
    expected = ["news@lists.example.net"]
    if not required:
        expected = ["olivia@example.com", "news@lists.example.net"]
    assert sender_addresses(owner) == expected
    form = CampaignForm(instance=campaign, account=owner)
    choices = [value for value, _label in form.fields["from_email"].choices if value]
    assert choices == expected


def test_an_operators_verified_domain_counts_for_every_account(owner, settings) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = True
    verified("example.com", None)
    assert sender_addresses(owner) == ["olivia@example.com"]


def test_scheduling_from_an_unverified_domain_is_refused_when_required(
    owner, campaign, settings
) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = True
    domains.create("example.com", account=owner)  # added but not verified
    with pytest.raises(MergeError) as caught:
        scheduling.schedule(campaign)
    assert "example.com" in str(caught.value) and "Check DNS" in str(caught.value)
    campaign.refresh_from_db()
    assert campaign.status == "draft"

    verified("example.com", None)
    scheduling.schedule(campaign)
    assert campaign.status == "scheduled"


def test_scheduling_from_any_address_is_allowed_when_not_required(
    owner, campaign, settings
) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = False
    scheduling.schedule(campaign)
    assert campaign.status == "scheduled"


def test_the_schedule_button_names_the_domain_and_how_to_verify_it(
    owner_client, campaign, settings
) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = True
    response = owner_client.post(
        reverse("campaigns:schedule", args=[campaign.uuid]), {"when": "now"}
    )
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "example.com" in shown and "Sending domains" in shown
    campaign.refresh_from_db()
    assert campaign.status == "draft"


@pytest.mark.parametrize("required", [True, False])
def test_the_system_check_warns_when_no_domain_is_verified(owner, settings, required: bool) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = required
    domains.create("example.com", account=owner)
    found = checks.check_verified_sending_domain(None)
    assert [w.id for w in found] == (["sending.W001"] if required else [])
    verified("example.org", owner)
    assert checks.check_verified_sending_domain(None) == []
