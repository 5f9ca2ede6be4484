"""The failure scenarios of test_failures.py on a real Celery worker process: the beat
(dispatch.tick) runs here, batches run in the worker, relays are aiosmtpd servers
that answer as each test scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from campaigns import scheduling
from campaigns.models import Campaign
from lists import subscriptions
from lists.models import Subscription
from sending import dispatch
from sending.models import Delivery, Relay, SendBatch
from tests.sending.test_pipeline import make_campaign
from tests.sending.test_workers import make_audience
from tests.services import WorkerProcess, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120), pytest.mark.redis]


def emails(count: int) -> list[str]:
    # make_audience's addresses, in subscriber id order.
    return [f"r{i}@example.org" for i in range(count)]


def started(owner, count: int) -> Campaign:  # noqa: ANN001
    campaign = make_campaign(owner, [make_audience(owner, count)])
    scheduling.schedule(campaign)
    return campaign


def tick_until(condition: Callable[[], bool], worker: WorkerProcess, timeout: float = 60) -> None:
    """Plays beat until the condition holds."""
    deadline = time.monotonic() + timeout
    while True:
        dispatch.tick()
        if condition():
            return
        assert time.monotonic() < deadline, f"timed out:\n{worker.output()[-3000:]}"
        time.sleep(0.2)


def is_sent(campaign: Campaign) -> Callable[[], bool]:
    return lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT


def status_of(address: str) -> Delivery:
    return Delivery.objects.get(subscriber__email=address)


def test_a_4xx_is_retried_and_then_sent(owner, scripted, celery_worker_process) -> None:  # noqa: ANN001
    to = emails(3)
    handler, relay = scripted({to[0]: ["451 4.7.1 Try again later"]})
    campaign = started(owner, 3)
    waiting = Delivery.objects.filter(subscriber__email=to[0], status="deferred")
    tick_until(lambda: waiting.exists() and len(handler.messages) == 2, celery_worker_process)
    deferred = status_of(to[0])
    assert deferred.next_attempt_at > timezone.now() and deferred.smtp_code == 451
    dispatch.tick()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENDING

    # The retry is due (the delay has passed).
    Delivery.objects.filter(id=deferred.id).update(next_attempt_at=timezone.now())
    tick_until(is_sent(campaign), celery_worker_process)
    retried = status_of(to[0])
    assert (retried.status, retried.attempts, retried.relay_id) == ("sent", 2, relay.id)
    assert handler.attempts[to[0]] == 2
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(to)


def test_a_5xx_fails_the_recipient_and_keeps_the_reply(
    owner, scripted, celery_worker_process
) -> None:  # noqa: ANN001, E501
    to = emails(3)
    handler, _ = scripted({to[1]: ["550 5.1.1 No such user here"]})
    campaign = started(owner, 3)
    tick_until(is_sent(campaign), celery_worker_process)
    failed = status_of(to[1])
    assert (failed.status, failed.smtp_code, failed.attempts) == ("failed", 550, 1)
    assert "No such user here" in failed.smtp_response
    assert {status_of(a).status for a in (to[0], to[2])} == {"sent"}
    assert handler.attempts[to[1]] == 1


def test_a_connection_lost_after_the_final_dot_is_unknown_and_never_resent(
    owner, scripted, celery_worker_process
) -> None:  # noqa: ANN001
    to = emails(3)
    handler, _ = scripted({to[1]: ["drop"]})
    campaign = started(owner, 3)
    tick_until(is_sent(campaign), celery_worker_process)
    assert status_of(to[1]).status == "unknown"
    assert status_of(to[2]).status == "sent"  # a new connection took over
    for _ in range(3):  # later ticks find nothing to send again
        dispatch.tick()
        time.sleep(0.2)
    assert handler.attempts[to[1]] == 1
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(to)


def test_a_dead_relay_fails_over_to_the_next(owner, scripted, celery_worker_process) -> None:  # noqa: ANN001
    # The dead relay is first in order and carries nearly all the weight: it is picked.
    dead = Relay.objects.create(name="a-dead", host="127.0.0.1", port=free_port(),
                                security="none", weight=10**6)  # fmt: skip
    handler, alive = scripted(name="b-alive", weight=1)
    campaign = started(owner, 4)
    tick_until(is_sent(campaign), celery_worker_process)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails(4))
    assert set(Delivery.objects.values_list("relay", flat=True)) == {alive.id}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    dead.refresh_from_db()
    assert dead.consecutive_failures >= 1 and "refused" in dead.last_error.lower()


def test_unsubscribing_during_the_send_stops_the_mail(
    owner, scripted, settings, celery_worker_process
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 10
    to = emails(30)
    handler, relay = scripted()
    Relay.objects.filter(id=relay.id).update(rate_per_second=10)  # about three seconds
    campaign = started(owner, 30)
    tick_until(lambda: len(handler.messages) >= 1, celery_worker_process)
    leaving = Subscription.objects.get(subscriber__email=to[-1])
    subscriptions.unsubscribe(leaving, source="panel")
    # The send is under way and the leaver's batch was planned with them in it.
    last = SendBatch.objects.get(campaign=campaign, last_subscriber_id=leaving.subscriber_id)
    assert last.status == SendBatch.Status.QUEUED and last.size == 10
    assert len(handler.messages) < 30

    tick_until(is_sent(campaign), celery_worker_process)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(to[:-1])
    assert not Delivery.objects.filter(subscriber__email=to[-1]).exclude(status="skipped").exists()


def test_a_batch_whose_recipients_all_left_is_not_the_end(
    owner, scripted, settings, celery_worker_process
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 2
    to = emails(6)
    handler, _ = scripted()
    campaign = started(owner, 6)
    # Planned and unsubscribed in one transaction: the worker gets the batches only
    # after both, so the first batch it runs has nobody left in it.
    with transaction.atomic():
        dispatch.tick()
        for subscription in Subscription.objects.filter(subscriber__email__in=to[:2]):
            subscriptions.unsubscribe(subscription, source="panel")
    first = SendBatch.objects.filter(campaign=campaign).order_by("first_subscriber_id").first()
    assert first.size == 2
    tick_until(is_sent(campaign), celery_worker_process)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(to[2:])
    first.refresh_from_db()
    assert first.status == SendBatch.Status.DONE and first.claims == 1  # ran, found nobody
    assert (
        not Delivery.objects.filter(subscriber__email__in=to[:2]).exclude(status="skipped").exists()
    )


def test_a_campaign_late_but_within_grace_is_sent(
    owner, scripted, settings, mailoutbox, celery_worker_process
) -> None:  # noqa: ANN001
    # Due eleven hours ago (everything was down), with twelve hours of grace.
    settings.SEND_GRACE_HOURS = 12
    handler, _ = scripted()
    campaign = make_campaign(owner, [make_audience(owner, 3)])
    scheduling.schedule(campaign, timezone.now() - timedelta(hours=11))
    tick_until(is_sent(campaign), celery_worker_process)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails(3))
    assert mailoutbox == []  # the owner is only told when it is held back
