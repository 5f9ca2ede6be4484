"""Engagement conditions of segments ("opened / clicked within N days", "never opened"),
checked against subscribers whose engagement was written by hand."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from lists import segments
from lists.models import Segment
from sending.models import Delivery
from stats.models import DeliveryEngagement
from tests.factories import CampaignFactory, MailingListFactory, SubscriberFactory

DAY = datetime.timedelta(days=1)


@pytest.fixture
def people(owner, stranger):  # noqa: ANN001, ANN201
    """ann opened and clicked 3 days ago, bob opened 40 days ago, cy's only open was a
    machine's, dee was sent nothing; the campaign "spring" went to ann, bob and cy."""
    now = timezone.now()
    spring = CampaignFactory(account=owner, name="spring")
    winter = CampaignFactory(account=owner, name="winter")
    theirs = CampaignFactory(account=stranger, name="theirs")
    names = ["ann", "bob", "cy", "dee"]
    subs = {name: SubscriberFactory(account=owner, email=f"{name}@example.org") for name in names}

    def engaged(name: str, campaign: object, **fields: object) -> None:
        delivery = Delivery.objects.create(campaign=campaign, subscriber=subs[name], status="sent")
        DeliveryEngagement.objects.create(
            delivery=delivery, campaign=campaign, subscriber=subs[name], **fields
        )

    engaged("ann", spring, first_human_open_at=now - 3 * DAY, first_human_click_at=now - 3 * DAY)
    engaged("bob", spring, first_human_open_at=now - 40 * DAY)
    engaged("cy", spring, first_machine_open_at=now - DAY)
    engaged("bob", winter, first_human_open_at=now - 2 * DAY)
    return {"subs": subs, "spring": spring, "winter": winter, "theirs": theirs}


def matching(owner: object, *conditions: dict, match: str = "all") -> set[str]:
    definition = {"match": match, "conditions": list(conditions)}
    return {s.email.split("@")[0] for s in segments.matching(definition, owner)}


@pytest.mark.django_db
def test_opened_within_days_counts_human_first_opens_of_any_campaign(owner, people) -> None:  # noqa: ANN001
    assert matching(owner, {"type": "opened", "days": 30}) == {"ann", "bob"}  # bob: winter
    assert matching(owner, {"type": "opened", "days": 1}) == set()
    assert matching(owner, {"type": "opened", "days": 60}) == {"ann", "bob"}


@pytest.mark.django_db
def test_opened_a_given_campaign_within_days(owner, people) -> None:  # noqa: ANN001
    spring = str(people["spring"].uuid)
    assert matching(owner, {"type": "opened", "days": 30, "campaign": spring}) == {"ann"}
    assert matching(owner, {"type": "opened", "days": 60, "campaign": spring}) == {"ann", "bob"}


@pytest.mark.django_db
def test_clicked_within_days(owner, people) -> None:  # noqa: ANN001
    assert matching(owner, {"type": "clicked", "days": 7}) == {"ann"}
    winter = str(people["winter"].uuid)
    assert matching(owner, {"type": "clicked", "days": 7, "campaign": winter}) == set()


@pytest.mark.django_db
def test_never_opened_ignores_machine_opens(owner, people) -> None:  # noqa: ANN001
    assert matching(owner, {"type": "never_opened"}) == {"cy", "dee"}


@pytest.mark.django_db
def test_never_opened_a_given_campaign_means_it_was_sent_and_not_opened(owner, people) -> None:  # noqa: ANN001
    spring, winter = str(people["spring"].uuid), str(people["winter"].uuid)
    assert matching(owner, {"type": "never_opened", "campaign": spring}) == {"cy"}
    assert matching(owner, {"type": "never_opened", "campaign": winter}) == set()


@pytest.mark.django_db
def test_engagement_combines_with_other_conditions(owner, people) -> None:  # noqa: ANN001
    either = matching(owner, {"type": "clicked", "days": 7}, {"type": "never_opened"}, match="any")
    assert either == {"ann", "cy", "dee"}
    both = matching(
        owner, {"type": "opened", "days": 30}, {"type": "email", "op": "contains", "value": "bob"}
    )
    assert both == {"bob"}


@pytest.mark.django_db
def test_another_accounts_campaign_is_unknown(owner, people) -> None:  # noqa: ANN001
    theirs = str(people["theirs"].uuid)
    errors = segments.validate(
        {"conditions": [{"type": "opened", "days": 5, "campaign": theirs}]}, owner
    )
    assert errors == [f"condition 1: unknown campaign {theirs!r}"]
    with pytest.raises(segments.InvalidSegment):
        segments.matching({"conditions": [{"type": "never_opened", "campaign": theirs}]}, owner)


@pytest.mark.django_db
@pytest.mark.parametrize("days", [0, -1, "abc", 5000, True, None])
def test_days_must_be_a_sensible_whole_number(owner, days) -> None:  # noqa: ANN001
    errors = segments.validate({"conditions": [{"type": "clicked", "days": days}]}, owner)
    assert errors and "days must be a whole number" in errors[0]


@pytest.mark.django_db
def test_the_editor_offers_engagement_and_saves_it(client, owner, people) -> None:  # noqa: ANN001
    MailingListFactory(owner=owner)
    people["spring"].started_at = timezone.now()
    people["spring"].save()
    client.force_login(owner)
    page = client.get(reverse("lists:segment-create")).content.decode()
    assert 'value="opened"' in page and f'value="opened:{people["spring"].uuid}"' in page
    assert 'value="never_opened"' in page and "data-valueless" in page
    response = client.post(
        reverse("lists:segment-create"),
        {"name": "Fans", "match": "all", "rows": "1",
         "c-0-what": f"opened:{people['spring'].uuid}", "c-0-op": "within_days", "c-0-value": "30"},
    )  # fmt: skip
    assert response.status_code == 302
    segment = Segment.objects.get(account=owner, name="Fans")
    condition = {"type": "opened", "days": 30, "campaign": str(people["spring"].uuid)}
    assert segment.definition["conditions"] == [condition]
    edit = client.get(reverse("lists:segment-edit", args=[segment.uuid])).content.decode()
    assert f'value="opened:{people["spring"].uuid}" data-ops="within_days" selected' in edit
    assert {s.email for s in segments.subscribers_in(segment)} == {"ann@example.org"}
