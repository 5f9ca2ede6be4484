"""The campaign lifecycle: transitions, locks, time zones, duplicates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Attachment, Campaign
from tests.factories import CampaignFactory, MailingListFactory

pytestmark = pytest.mark.django_db
Status = Campaign.Status


@pytest.fixture
def campaign(owner) -> Campaign:  # noqa: ANN001
    return CampaignFactory(account=owner, lists=[MailingListFactory(owner=owner)])


def test_nine_in_copenhagen_in_winter_is_eight_utc() -> None:
    local = dt.datetime(2027, 1, 15, 9, 0)  # noqa: DTZ001 - a wall-clock time, zone given apart
    assert scheduling.local_to_utc(local, "Europe/Copenhagen") == dt.datetime(
        2027, 1, 15, 8, 0, tzinfo=dt.UTC
    )


def test_nine_in_copenhagen_in_summer_is_seven_utc() -> None:
    local = dt.datetime(2027, 7, 15, 9, 0)  # noqa: DTZ001
    assert scheduling.local_to_utc(local, "Europe/Copenhagen").hour == 7


def test_scheduling_freezes_and_the_campaign_becomes_due(campaign: Campaign) -> None:
    send_at = timezone.now() + dt.timedelta(hours=1)
    scheduling.schedule(campaign, send_at)
    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED
    assert campaign.is_frozen
    assert list(scheduling.due_campaigns(timezone.now())) == []
    assert list(scheduling.due_campaigns(send_at)) == [campaign]


def test_schedule_now_is_due_at_once(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    assert list(scheduling.due_campaigns()) == [campaign]


def test_scheduling_twice_fails_the_second_time(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    with pytest.raises(scheduling.TransitionError):
        scheduling.schedule(Campaign.objects.get(pk=campaign.pk))


def test_starting_is_a_conditional_claim(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    first, second = Campaign.objects.get(pk=campaign.pk), Campaign.objects.get(pk=campaign.pk)
    scheduling.start(first)
    with pytest.raises(scheduling.TransitionError):
        scheduling.start(second)
    assert Campaign.objects.get(pk=campaign.pk).status == Status.SENDING


def test_unschedule_returns_to_draft_and_unfreezes(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    scheduling.unschedule(campaign)
    campaign.refresh_from_db()
    assert campaign.status == Status.DRAFT
    assert campaign.send_at is None
    assert not campaign.is_frozen


@pytest.mark.parametrize("start", [False, True])
def test_pause_resume_and_cancel(campaign: Campaign, start: bool) -> None:
    scheduling.schedule(campaign)
    if start:
        scheduling.start(campaign)
    scheduling.pause(campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == Status.PAUSED
    scheduling.resume(campaign)
    expected = Status.SENDING if start else Status.SCHEDULED
    assert Campaign.objects.get(pk=campaign.pk).status == expected
    scheduling.cancel(campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == Status.CANCELLED


@pytest.mark.parametrize("action", ["pause", "cancel", "unschedule", "resume"])
def test_a_draft_cannot_be_paused_cancelled_unscheduled_or_resumed(
    campaign: Campaign, action: str
) -> None:
    with pytest.raises(scheduling.TransitionError):
        getattr(scheduling, action)(campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == Status.DRAFT


def test_sent_campaign_cannot_be_cancelled(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    scheduling.finish(campaign)
    with pytest.raises(scheduling.TransitionError):
        scheduling.cancel(campaign)


def test_due_campaigns_uses_one_query(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    with CaptureQueriesContext(connection) as queries:
        list(scheduling.due_campaigns())
    assert len(queries) == 1
    assert "scheduled" in queries[0]["sql"]


def test_duplicate_is_a_new_draft_with_the_same_content(campaign: Campaign) -> None:
    attachment = Attachment(campaign=campaign, name="x.pdf", size=3, content_type="application/pdf")
    attachment.file.save("x.pdf", ContentFile(b"pdf"), save=False)
    attachment.save()
    scheduling.schedule(campaign)
    copy = scheduling.duplicate(Campaign.objects.get(pk=campaign.pk))
    assert copy.status == Status.DRAFT
    assert copy.uuid != campaign.uuid
    assert copy.body == campaign.body and copy.subject == campaign.subject
    assert list(copy.lists.all()) == list(campaign.lists.all())
    assert copy.attachments.get().name == "x.pdf"
    assert not copy.is_frozen


def test_resuming_a_paused_campaign_past_its_time_makes_it_due_now(campaign: Campaign) -> None:
    # The owner resuming a campaign held back for lateness accepts the lateness.
    scheduling.schedule(campaign, timezone.now() - dt.timedelta(hours=13))
    scheduling.pause(campaign)
    before = timezone.now()
    scheduling.resume(Campaign.objects.get(pk=campaign.pk))
    resumed = Campaign.objects.get(pk=campaign.pk)
    assert resumed.status == Status.SCHEDULED
    assert before <= resumed.send_at <= timezone.now()
    assert list(scheduling.due_campaigns()) == [resumed]


def test_resuming_before_its_time_keeps_the_time(campaign: Campaign) -> None:
    send_at = timezone.now() + dt.timedelta(hours=2)
    scheduling.schedule(campaign, send_at)
    scheduling.pause(campaign)
    scheduling.resume(campaign)
    assert Campaign.objects.get(pk=campaign.pk).send_at == send_at


def test_resume_reads_whether_it_started_from_the_database(campaign: Campaign) -> None:
    scheduling.schedule(campaign)
    stale = Campaign.objects.get(pk=campaign.pk)  # loaded before the dispatcher started it
    scheduling.start(Campaign.objects.get(pk=campaign.pk))
    scheduling.pause(Campaign.objects.get(pk=campaign.pk))
    scheduling.resume(stale)
    assert Campaign.objects.get(pk=campaign.pk).status == Status.SENDING


@pytest.mark.parametrize("started", [False, True])
def test_only_a_paused_campaign_that_never_started_can_be_unscheduled(
    campaign: Campaign, started: bool
) -> None:
    scheduling.schedule(campaign)
    if started:
        scheduling.start(campaign)
    scheduling.pause(campaign)
    assert scheduling.can_unschedule(campaign) is not started
    if started:
        with pytest.raises(scheduling.TransitionError):
            scheduling.unschedule(campaign)
        assert Campaign.objects.get(pk=campaign.pk).status == Status.PAUSED
        return
    scheduling.unschedule(campaign)
    unscheduled = Campaign.objects.get(pk=campaign.pk)
    assert unscheduled.status == Status.DRAFT and not unscheduled.is_frozen
