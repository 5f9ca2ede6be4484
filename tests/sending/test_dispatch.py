"""The dispatcher at the domain level, with times instead of waiting: gradual sending,
two dispatchers racing for one campaign, and who is in the audience once it starts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from sending import dispatch
from sending.models import SendBatch
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory
from tests.sending.test_failures import audience
from tests.sending.test_pipeline import make_campaign, run_pipeline

Status = SendBatch.Status


def start(campaign: Campaign, now, capture) -> list:  # noqa: ANN001
    """Schedules and starts the campaign at ``now``; returns the queued batch tasks."""
    scheduling.schedule(campaign, now)
    with capture(execute=False) as queued:
        dispatch.start_due(now)
    return queued


def statuses(campaign: Campaign) -> list[str]:
    return list(
        campaign.send_batches.order_by("first_subscriber_id").values_list("status", flat=True)
    )


@pytest.mark.django_db
def test_spread_over_hours_releases_batches_over_that_time(
    owner, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 10
    mailing_list, _ = audience(owner, 40)
    campaign = make_campaign(owner, [mailing_list], spread_over_hours=2)
    now = timezone.now()
    start(campaign, now, django_capture_on_commit_callbacks)
    assert statuses(campaign) == ["queued", "planned", "planned", "planned"]
    releases = list(
        campaign.send_batches.order_by("release_at").values_list("release_at", flat=True)
    )
    assert [(t - now).total_seconds() for t in releases] == [0, 1800, 3600, 5400]

    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.release(now + timedelta(minutes=29))
    assert statuses(campaign) == ["queued", "planned", "planned", "planned"] and not queued
    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.release(now + timedelta(minutes=61))
    assert statuses(campaign) == ["queued", "queued", "queued", "planned"]
    assert len(queued) == 1  # one enqueue call for the batches released together
    dispatch.release(now + timedelta(hours=2))
    assert statuses(campaign) == ["queued"] * 4


@pytest.mark.django_db
def test_max_per_hour_holds_the_hourly_count(
    owner, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 1000
    mailing_list, _ = audience(owner, 12)
    campaign = make_campaign(owner, [mailing_list], max_per_hour=120)
    now = timezone.now()
    start(campaign, now, django_capture_on_commit_callbacks)
    batches = list(campaign.send_batches.order_by("release_at"))
    # Small batches (two a minute), so an hour never holds more than 120 recipients.
    assert [b.size for b in batches] == [2] * 6
    assert [(b.release_at - now).total_seconds() for b in batches] == [0, 60, 120, 180, 240, 300]
    dispatch.release(now + timedelta(seconds=150))
    assert statuses(campaign) == ["queued", "queued", "queued", "planned", "planned", "planned"]


@pytest.mark.django_db
def test_a_paused_campaign_releases_nothing(
    owner, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 5
    mailing_list, _ = audience(owner, 10)
    campaign = make_campaign(owner, [mailing_list], spread_over_hours=1)
    now = timezone.now()
    start(campaign, now, django_capture_on_commit_callbacks)
    campaign.refresh_from_db()
    scheduling.pause(campaign)
    dispatch.release(now + timedelta(hours=2))
    assert statuses(campaign) == ["queued", "planned"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_start_a_campaign_once(owner, settings) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 10
    mailing_list, _ = audience(owner, 30)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait()
            dispatch.start_due(timezone.now())
        except BaseException as exc:  # noqa: BLE001 (reported by the test below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    # One plan: three batches, not six, and no subscriber in two of them.
    assert campaign.send_batches.count() == 3
    assert sum(campaign.send_batches.values_list("size", flat=True)) == 30


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_subscribers_who_join_after_the_start_are_not_included(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list, other_list = MailingListFactory(owner=owner), MailingListFactory(owner=owner)
    first = SubscriptionFactory(
        mailing_list=mailing_list, subscriber=SubscriberFactory(account=owner)
    )
    # On another list at the start, with an id inside the campaign's id range.
    earlier = SubscriberFactory(account=owner)
    SubscriptionFactory(mailing_list=other_list, subscriber=earlier)
    last = SubscriptionFactory(
        mailing_list=mailing_list, subscriber=SubscriberFactory(account=owner)
    )
    emails = [first.subscriber.email, last.subscriber.email]
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    queued = start(campaign, timezone.now(), django_capture_on_commit_callbacks)

    later = SubscriptionFactory(
        mailing_list=mailing_list, subscriber=SubscriberFactory(account=owner)
    )
    SubscriptionFactory(mailing_list=mailing_list, subscriber=earlier)
    for send in queued:
        send()
    run_pipeline(settings, django_capture_on_commit_callbacks)

    received = sorted(m.rcpt_tos[0] for m in handler.messages)
    assert received == sorted(emails)
    assert later.subscriber.email not in received and earlier.email not in received
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
