"""The dispatcher at the domain level, with times instead of waiting: gradual sending,
two dispatchers racing for one campaign, and who is in the audience once it starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from sending import delivery, dispatch
from sending.models import Delivery, Relay, SendBatch
from sending.tasks import send_batch
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory
from tests.sending.test_failures import audience
from tests.sending.test_pipeline import make_campaign, run_pipeline
from tests.services import ROOT, database_url, free_port

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
        dispatch.release(now + timedelta(minutes=30, seconds=2))
    assert statuses(campaign) == ["queued", "queued", "planned", "planned"]
    assert len(queued) == 1
    dispatch.release(now + timedelta(minutes=60, seconds=3))
    assert statuses(campaign) == ["queued", "queued", "queued", "planned"]
    # A tick a little late (the beat is not exact) still releases the batch due.
    dispatch.release(now + timedelta(minutes=90, seconds=20))
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
    dispatch.release(now + timedelta(seconds=61))
    dispatch.release(now + timedelta(seconds=122))
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


def tick(at, capture) -> None:  # noqa: ANN001
    with capture(execute=True):
        dispatch.tick(at)


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_after_a_pause_a_paced_campaign_sends_its_overdue_batches_at_its_pace(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list, _ = audience(owner, 12)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list], max_per_hour=120)  # 2 a minute
    now = timezone.now()
    for send in start(campaign, now, django_capture_on_commit_callbacks):
        send()
    assert len(handler.messages) == 2
    campaign.refresh_from_db()
    scheduling.pause(campaign)
    scheduling.resume(campaign)  # an hour later: the five other batches are all overdue

    back = now + timedelta(hours=1)
    tick(back, django_capture_on_commit_callbacks)
    assert len(handler.messages) == 4  # one batch, not the whole campaign
    tick(back + timedelta(seconds=30), django_capture_on_commit_callbacks)
    assert len(handler.messages) == 4
    for minutes in range(1, 5):
        tick(back + timedelta(minutes=minutes, seconds=1), django_capture_on_commit_callbacks)
        assert len(handler.messages) == 4 + 2 * minutes
    tick(back + timedelta(minutes=5), django_capture_on_commit_callbacks)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_a_retry_batch_sends_only_the_deferred_recipients(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    # Workers take queued batches in any order: here the first and the last ran (with a
    # 4xx each) before the middle one. The retry spans the middle one's ids.
    settings.SEND_BATCH_SIZE = 3
    mailing_list, emails = audience(owner, 9)
    later = ["451 4.7.1 Try again later"]
    handler, _ = scripted({emails[0]: list(later), emails[8]: list(later)})
    campaign = make_campaign(owner, [mailing_list])
    start(campaign, timezone.now(), django_capture_on_commit_callbacks)
    first, middle, last = campaign.send_batches.order_by("first_subscriber_id")
    send_batch.delay(first.id)
    send_batch.delay(last.id)
    Delivery.objects.filter(status="deferred").update(next_attempt_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        dispatch.retry_deferred(timezone.now())

    received = [m.rcpt_tos[0] for m in handler.messages]
    assert sorted(received) == sorted([*emails[:3], *emails[6:]])
    retry = SendBatch.objects.get(campaign=campaign, kind=SendBatch.Kind.RETRY)
    assert retry.status == Status.DONE
    assert sorted(retry.deliveries.values_list("subscriber__email", flat=True)) == sorted(
        [emails[0], emails[8]]
    )
    send_batch.delay(middle.id)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails)


class HangingHandler:
    """Answers 451 to the first try of each address in ``later``; on their second try
    takes the message and never answers (the worker is killed meanwhile)."""

    def __init__(self, later: set[str]) -> None:
        self.later = later
        self.tries: dict[str, int] = {}
        self.received: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        address = envelope.rcpt_tos[0]
        self.tries[address] = self.tries.get(address, 0) + 1
        if address in self.later:
            if self.tries[address] == 1:
                return "451 4.7.1 Try again later"
            await asyncio.sleep(120)
        self.received.append(address)
        return "250 OK"


# A process that plays a send worker which also ran the dispatcher's retry step: the
# retry batch's task runs in it (eagerly), so no other worker of the session can take it.
RETRY_IN_THIS_PROCESS = """
import django
django.setup()
from django.utils import timezone
from mailpanel.celery import app
app.conf.task_always_eager = True
from sending import dispatch
dispatch.retry_deferred(timezone.now())
"""


def start_process(script: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    environment = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "mailpanel.settings",
        "DATABASE_URL": database_url(), "SECRET_KEY": django_settings.SECRET_KEY, **env,
    }  # fmt: skip
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", script], cwd=ROOT, env=environment, start_new_session=True,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_a_retry_batch_whose_worker_dies_leaves_only_its_own_recipients_unknown(
    owner, settings, tmp_path
) -> None:  # noqa: ANN001
    # The first and the last batch ran (a 4xx each), the middle one is still waiting.
    # The retry's worker is killed in the middle of its send: its two recipients become
    # unknown, and the middle batch's recipients still get their message.
    settings.SEND_BATCH_SIZE = 3
    mailing_list, emails = audience(owner, 9)
    handler, port = HangingHandler({emails[0], emails[8]}), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    Relay.objects.create(name="loop", host="127.0.0.1", port=port, security="none",
                         rate_per_second=1000)  # fmt: skip
    victim = None
    try:
        campaign = make_campaign(owner, [mailing_list])
        scheduling.schedule(campaign)
        scheduling.start(campaign)
        dispatch.plan(campaign, timezone.now())  # planned, nothing on the queue yet
        first, middle, last = campaign.send_batches.order_by("first_subscriber_id")
        delivery.run_batch(first.id, "here")
        delivery.run_batch(last.id, "here")
        Delivery.objects.filter(status="deferred").update(next_attempt_at=timezone.now())

        log = tmp_path / "victim.log"
        victim = start_process(RETRY_IN_THIS_PROCESS, log, {"SEND_BATCH_LEASE_SECONDS": "2"})
        deadline = time.monotonic() + 90
        while handler.tries.get(emails[0], 0) < 2:
            assert time.monotonic() < deadline and victim.poll() is None, log.read_text()
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        retry = SendBatch.objects.get(campaign=campaign, kind=SendBatch.Kind.RETRY)
        time.sleep(2.5)  # its lease runs out
        dispatch.requeue_expired(timezone.now())
        delivery.run_batch(retry.id, "here")
        delivery.run_batch(middle.id, "here")

        status = dict(
            Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "status")
        )
        assert {status[emails[0]], status[emails[8]]} == {"unknown"}
        assert {status[e] for e in emails[1:8]} == {"sent"}
        assert sorted(handler.received) == sorted(emails[1:8])
        dispatch.finish_complete()
        campaign.refresh_from_db()
        assert campaign.status == Campaign.Status.SENT
    finally:
        if victim is not None and victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        controller.stop()
