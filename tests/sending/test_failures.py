"""What the pipeline does when relays answer badly or go away."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bounces.models import BounceEvent
from campaigns import scheduling
from campaigns.models import Campaign
from lists import subscriptions
from sending import delivery, dispatch, pacing, smtp
from sending.models import Delivery, Relay, SendBatch
from tests.factories import MailingListFactory, SubscriptionFactory
from tests.sending.test_pipeline import make_campaign, run_pipeline
from tests.services import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def audience(owner, count: int):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    subs = [SubscriptionFactory(mailing_list=mailing_list) for _ in range(count)]
    subscriptions.recount([mailing_list.id])
    return mailing_list, [s.subscriber.email for s in subs]


def delivery_of(address: str) -> Delivery:
    return Delivery.objects.get(subscriber__email=address)


def test_a_5xx_fails_that_recipient_and_keeps_the_reply(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 3)
    handler, _ = scripted({emails[1]: ["550 5.1.1 No such user here"]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    failed = delivery_of(emails[1])
    assert failed.status == "failed" and failed.smtp_code == 550
    assert "No such user" in failed.smtp_response
    assert {d.status for d in Delivery.objects.exclude(id=failed.id)} == {"sent"}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_a_4xx_is_retried_later_and_then_sent(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 2)
    handler, _ = scripted({emails[0]: ["451 4.7.1 Try again later"]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    deferred = delivery_of(emails[0])
    assert deferred.status == "deferred" and deferred.next_attempt_at > timezone.now()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # not done while a retry is due

    Delivery.objects.filter(id=deferred.id).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert delivery_of(emails[0]).status == "sent"
    assert handler.attempts[emails[0]] == 2
    assert len(handler.messages) == 2
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_a_deferred_message_past_the_deadline_fails(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 1)
    scripted({emails[0]: ["451 later"]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    Delivery.objects.update(created_at=timezone.now() - timedelta(hours=25))
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert delivery_of(emails[0]).status == "failed"


def test_connection_lost_after_the_final_dot_is_unknown_and_never_resent(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 3)
    handler, _ = scripted({emails[1]: ["drop"]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    dropped = delivery_of(emails[1])
    assert dropped.status == "unknown", dropped.smtp_response
    assert delivery_of(emails[2]).status == "sent"  # a new connection took over
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert handler.attempts[emails[1]] == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_a_refused_recipient_mid_pipeline_leaves_the_others_alone(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 5)
    handler, _ = scripted(rcpt_script={emails[1]: "550 5.1.1 unknown user", emails[3]: "451 later"})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    refused = delivery_of(emails[1])
    assert refused.status == "failed" and refused.smtp_code == 550
    assert delivery_of(emails[3]).status == "deferred"
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(
        [emails[0], *emails[2:3], emails[4]]
    )
    # Each accepted message went out once, with its own content.
    for received in handler.messages:
        assert f"<{received.rcpt_tos[0]}>" in received.data.split(b"\r\n", 1)[0].decode()


@pytest.mark.parametrize("pipelining", [True, False])
def test_both_session_styles_send_every_message_once(
    owner, scripted, settings, django_capture_on_commit_callbacks, pipelining: bool
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 4)
    handler, _ = scripted({emails[2]: ["550 5.7.1 rejected by policy"]}, pipelining=pipelining)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted([*emails[:2], emails[3]])
    assert delivery_of(emails[2]).status == "failed"
    assert sum(handler.attempts.values()) == 4


def test_a_dead_relay_fails_over_to_the_next(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 4)
    Relay.objects.create(
        name="dead", host="127.0.0.1", port=free_port(), security="none", weight=1000
    )
    handler, alive = scripted(name="alive", weight=1)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails)
    assert set(Delivery.objects.values_list("relay", flat=True)) == {alive.id}
    dead = Relay.objects.get(name="dead")
    assert dead.consecutive_failures >= 1 and "refused" in dead.last_error.lower()


def test_unsubscribing_after_planning_stops_the_mail(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 3)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.tick()  # planned, but no batch has run
    subscription = mailing_list.subscriptions.get(subscriber__email=emails[0])
    subscriptions.unsubscribe(subscription, source="panel")
    for send in queued:
        send()
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails[1:])


def test_a_batch_whose_recipients_all_left_is_not_the_end(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    settings.SEND_BATCH_SIZE = 2
    mailing_list, emails = audience(owner, 6)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.tick()
    for subscription in mailing_list.subscriptions.filter(subscriber__email__in=emails[:2]):
        subscriptions.unsubscribe(subscription, source="panel")
    for send in queued:
        send()
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails[2:])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_pause_parks_batches_and_resume_finishes_them(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    settings.SEND_BATCH_SIZE = 2
    mailing_list, emails = audience(owner, 6)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.tick()
    campaign.refresh_from_db()
    scheduling.pause(campaign)
    for send in queued:
        send()  # the workers see the pause and give their batches back
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert handler.messages == []
    assert set(campaign.send_batches.values_list("status", flat=True)) == {"queued"}
    scheduling.resume(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert len(handler.messages) == 6


def test_cancel_stops_everything(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 3)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.tick()
    campaign.refresh_from_db()
    scheduling.cancel(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert handler.messages == []
    assert not campaign.send_batches.exclude(status="done").exists()


def test_a_message_that_fails_to_build_mid_session_leaves_no_stale_replies(scripted) -> None:  # noqa: ANN001
    handler, relay = scripted()

    def broken() -> bytes:
        raise ValueError("merge failed")

    items = [
        (1, "b@example.com", "one@example.org", b"Subject: 1\r\n\r\none\r\n"),
        (2, "b@example.com", "two@example.org", broken),
    ]
    with pytest.raises(ValueError, match="merge failed"):
        list(smtp.pool.get(relay).send_many(items))
    # The next use gets a fresh session whose replies belong to its own messages.
    outcomes = list(
        smtp.pool.get(relay).send_many(
            [(3, "b@example.com", "three@example.org", lambda: b"Subject: 3\r\n\r\nthree\r\n")]
        )
    )
    assert [(key, o.status) for key, o in outcomes] == [(3, "sent")]
    assert [m.rcpt_tos[0] for m in handler.messages][-1] == "three@example.org"


def test_a_relay_answering_4xx_again_and_again_cools_down_and_its_work_moves_on(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 30)
    busy, busy_relay = scripted(
        {e: ["451 4.3.2 Too many messages, slow down"] for e in emails}, name="alpha",
        weight=100000,
    )  # fmt: skip
    calm, calm_relay = scripted(name="beta", weight=1)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)

    # No more after the streak (but the one already pipelined behind it).
    tried = sum(busy.attempts.values())
    assert pacing.TEMPFAILS_BEFORE_COOLDOWN <= tried <= pacing.TEMPFAILS_BEFORE_COOLDOWN + 1
    busy_relay.refresh_from_db()
    assert busy_relay.cooldown_until > timezone.now()
    assert "451 4.3.2" in busy_relay.last_error
    assert busy_relay not in Relay.objects.usable()
    assert len(calm.messages) == 30 - tried
    # The deferred ones are retried later, through the relay that is still well.
    Delivery.objects.filter(status="deferred").update(next_attempt_at=timezone.now())
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert sorted(m.rcpt_tos[0] for m in calm.messages) == sorted(emails)
    assert set(Delivery.objects.values_list("relay", flat=True)) == {calm_relay.id}


def test_a_deferred_message_is_retried_through_another_relay(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    mailing_list, emails = audience(owner, 3)
    first, first_relay = scripted({emails[1]: ["451 4.7.1 greylisted"]}, name="alpha",
                                  weight=100000)  # fmt: skip
    second, second_relay = scripted(name="beta", weight=1)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert delivery_of(emails[1]).relay_id == first_relay.id
    assert delivery_of(emails[1]).status == "deferred"

    Delivery.objects.filter(status="deferred").update(next_attempt_at=timezone.now())
    run_pipeline(settings, django_capture_on_commit_callbacks)
    retried = delivery_of(emails[1])
    assert (retried.status, retried.relay_id, retried.attempts) == ("sent", second_relay.id, 2)
    assert [m.rcpt_tos[0] for m in second.messages] == [emails[1]]
    assert sorted(m.rcpt_tos[0] for m in first.messages) == sorted([emails[0], emails[2]])
    first_relay.refresh_from_db()
    assert first_relay.cooldown_until is None  # one 4xx is not a pattern
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_two_overlapping_batches_cannot_both_claim_a_recipient(owner, scripted) -> None:  # noqa: ANN001
    # A retry batch spans all of a campaign's due deferred rows, so batches can overlap.
    mailing_list, emails = audience(owner, 3)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    batches = [
        SendBatch.objects.create(campaign=campaign, first_subscriber_id=0,
                                 last_subscriber_id=10**9, size=3, release_at=timezone.now())
        for _ in range(2)
    ]  # fmt: skip
    first, second = (delivery.take_recipients(b, campaign) for b in batches)
    assert len(first) == len(second) == 3  # both read the same rows
    assert len(delivery.claim_deliveries(first)) == 3
    assert delivery.claim_deliveries(second) == []


@pytest.mark.parametrize(("late", "sent"), [(timedelta(minutes=110), True),
                                            (timedelta(minutes=130), False)])  # fmt: skip
def test_a_late_campaign_is_sent_within_its_grace_period_and_held_after_it(
    owner, scripted, settings, django_capture_on_commit_callbacks, mailoutbox, late, sent: bool
) -> None:  # noqa: ANN001, E501
    # Everything was down when it became due; two hours of grace.
    settings.SEND_GRACE_HOURS = 2
    mailing_list, emails = audience(owner, 2)
    handler, _ = scripted()
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign, timezone.now() - late)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    campaign.refresh_from_db()
    if sent:
        assert campaign.status == Campaign.Status.SENT
        assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(emails)
        assert mailoutbox == []  # nothing to tell the owner
    else:
        assert campaign.status == Campaign.Status.PAUSED
        assert handler.messages == []
        assert [m.to for m in mailoutbox] == [[owner.email]]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refusal_is_classed_with_the_command_it_answered(
    owner, scripted, settings, django_capture_on_commit_callbacks, pipelining: bool
) -> None:  # noqa: ANN001, E501
    # The same words with no enhanced code: in reply to RCPT TO they are the server's verdict
    # on the address; after the content, a filter's, which counts as soft.
    mailing_list, emails = audience(owner, 3)
    scripted(
        {emails[1]: ["550 No such user here"]},
        rcpt_script={emails[0]: "550 No such user here"},
        pipelining=pipelining,
    )
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)

    assert delivery_of(emails[0]).smtp_response == "No such user here (in reply to RCPT TO command)"
    assert (
        delivery_of(emails[1]).smtp_response
        == "No such user here (in reply to end of DATA command)"
    )
    assert dict(BounceEvent.objects.values_list("recipient", "bounce_class")) == {
        emails[0]: "hard",
        emails[1]: "soft",
    }
    assert delivery_of(emails[2]).status == "sent"


def test_a_refusal_of_mail_from_names_that_command() -> None:
    refused, reset = smtp._refusal([(553, b"5.1.8 Sender domain does not exist")])

    assert refused == smtp.Outcome(
        smtp.FAILED, 553, "5.1.8 Sender domain does not exist (in reply to MAIL FROM command)"
    )
    assert reset == b"RSET\r\n"
