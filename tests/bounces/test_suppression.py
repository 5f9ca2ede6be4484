"""The bounce rules: what each class does to the address, and lifting a suppression."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bounces import intake, suppression
from bounces.models import (
    BounceEvent,
    QuarantinedMessage,
    SenderSideAlert,
    SenderSideCounter,
    SuppressionPolicy,
)
from campaigns import scheduling
from lists import subscriptions
from lists.models import Subscription
from sending import dispatch, smtp
from sending.models import Delivery, Relay
from tests.bounces.returned import message, sent_to, verp_address
from tests.factories import MailingListFactory, SubscriptionFactory, UserFactory
from tests.sending import scripted_smtp
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = pytest.mark.django_db


def statuses(delivery: Delivery) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber=delivery.subscriber).values_list("status", flat=True)
    )


def bounce(delivery: Delivery, name: str, *, days_ago: int = 0) -> list[BounceEvent]:
    raw = message(name, recipient=delivery.subscriber.email)
    events = intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    if days_ago:
        # The soft rule counts calendar days: move the event (not the clock) into the past.
        at = timezone.now() - timedelta(days=days_ago)
        BounceEvent.objects.filter(id__in=[e.id for e in events]).update(received_at=at)
    return events


def test_a_hard_bounce_suppresses_on_every_list_of_the_account(owner) -> None:  # noqa: ANN001
    first = sent_to(owner, "ann@reader.example")
    second_list = MailingListFactory(owner=owner)
    sent_to(owner, "ann@reader.example", mailing_list=second_list)

    bounce(first, "dsn_user_unknown.eml")

    assert statuses(first) == {"bounced"}


def test_a_bounce_does_not_turn_an_unsubscribed_address_into_bounced(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    Subscription.objects.filter(subscriber=delivery.subscriber).update(status="unsubscribed")

    bounce(delivery, "dsn_user_unknown.eml")

    assert statuses(delivery) == {"unsubscribed"}


def test_a_hard_bounce_leaves_other_accounts_alone(owner) -> None:  # noqa: ANN001
    mine = sent_to(owner, "ann@reader.example")
    theirs = sent_to(UserFactory(username="otto"), "ann@reader.example")

    bounce(mine, "dsn_user_unknown.eml")

    assert statuses(mine) == {"bounced"} and statuses(theirs) == {"confirmed"}


def test_an_account_can_keep_hard_bounced_addresses(owner) -> None:  # noqa: ANN001
    SuppressionPolicy.objects.create(account=owner, suppress_hard=False)
    delivery = sent_to(owner, "ann@reader.example")

    bounce(delivery, "dsn_user_unknown.eml")

    assert statuses(delivery) == {"confirmed"}
    assert BounceEvent.objects.get().applied


def test_a_complaint_suppresses_at_once(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")

    [event] = bounce(delivery, "arf_complaint.eml")

    assert event.bounce_class == "complaint" and statuses(delivery) == {"complained"}


def test_an_unsubscribe_request_unsubscribes(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")

    [event] = bounce(delivery, "unsubscribe_request.eml")

    assert event.bounce_class == "unsubscribe_request"
    assert statuses(delivery) == {"unsubscribed"}


def test_soft_bounces_suppress_only_on_n_distinct_days_within_the_window(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    # Three on one day and one 20 days ago (outside the 14-day window): not yet.
    for _ in range(3):
        bounce(delivery, "dsn_mailbox_full.eml", days_ago=1)
    bounce(delivery, "dsn_mailbox_full.eml", days_ago=20)
    bounce(delivery, "dsn_mailbox_full.eml", days_ago=5)
    assert statuses(delivery) == {"confirmed"}

    # A third distinct day inside the window (today).
    [event] = bounce(delivery, "dsn_mailbox_full.eml")

    assert event.bounce_class == "soft" and statuses(delivery) == {"bounced"}
    change = Subscription.objects.get(subscriber=delivery.subscriber).changes.get()
    assert change.note.startswith("soft bounces on 3 days within 14")


def test_the_soft_rule_follows_the_accounts_policy(owner) -> None:  # noqa: ANN001
    SuppressionPolicy.objects.create(account=owner, soft_bounce_days=1)
    delivery = sent_to(owner, "ann@reader.example")

    bounce(delivery, "dsn_mailbox_full.eml")

    assert statuses(delivery) == {"bounced"}


def test_a_sender_side_refusal_never_suppresses_but_is_counted_and_alerts(
    owner, operator, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.ADMINS = [("Ops", "ops@mailpanel.example")]
    settings.BOUNCE_SENDER_SIDE_ALERT_THRESHOLD = 2
    relay = Relay.objects.create(name="r1", host="127.0.0.1", port=25, security="none")
    one = sent_to(owner, "ann@reader.example", relay=relay)
    two = sent_to(owner, "bob@reader.example", relay=relay, campaign=one.campaign)

    with django_capture_on_commit_callbacks(execute=True):
        [event] = bounce(one, "dsn_blocklisted.eml")
    assert event.bounce_class == "sender_side" and event.relay == relay
    assert not SenderSideAlert.objects.exists() and mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        bounce(two, "dsn_blocklisted.eml")
        bounce(two, "dsn_blocklisted.eml")

    assert statuses(one) == statuses(two) == {"confirmed"}
    counter = SenderSideCounter.objects.get()
    assert (counter.relay, counter.receiving_domain, counter.count) == (relay, "reader.example", 3)
    alert = SenderSideAlert.objects.get()  # once per relay, domain and day
    assert alert.count_at_raise == 2 and "spamhaus" in alert.sample_diagnostic
    # The site admins and every staff user with an address (the operator), once.
    recipients = sorted(address for m in mail.outbox for address in m.to)
    assert recipients == sorted(["ops@mailpanel.example", operator.email])
    assert "reader.example" in mail.outbox[0].subject


def test_not_a_failure_is_only_stored(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    event = intake.record_provider_event(
        provider="ses", event_id="d-1", recipient="ann@reader.example",
        bounce_class="not_a_failure", payload="{}",
    )  # fmt: skip
    assert event.applied and event.subscriber == delivery.subscriber
    assert statuses(delivery) == {"confirmed"}


def test_a_replayed_provider_event_is_stored_and_applied_once(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    kwargs = {
        "provider": "mailgun",
        "event_id": "ev-1",
        "recipient": "ann@reader.example",
        "bounce_class": "hard",
        "status_code": "5.1.1",
        "payload": '{"id": "ev-1"}',
    }

    first = intake.record_provider_event(**kwargs)
    again = intake.record_provider_event(**kwargs)

    assert first is not None and again is None
    assert BounceEvent.objects.count() == 1 and statuses(delivery) == {"bounced"}
    assert Subscription.objects.get(subscriber=delivery.subscriber).changes.count() == 1


def test_a_provider_event_of_an_unknown_class_is_quarantined(db) -> None:  # noqa: ANN001
    event = intake.record_provider_event(
        provider="ses", event_id="x", recipient="a@b.example", bounce_class="weird", payload="{}"
    )
    assert event is None and not BounceEvent.objects.exists()
    assert "weird" in QuarantinedMessage.objects.get(provider="ses").reason


def test_applying_an_event_twice_changes_nothing_the_second_time(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    [event] = bounce(delivery, "dsn_user_unknown.eml")
    Subscription.objects.filter(subscriber=delivery.subscriber).update(status="confirmed")

    assert suppression.apply(event) == 0
    assert statuses(delivery) == {"confirmed"}


def test_lifting_records_the_note_and_resets_the_soft_count(owner) -> None:  # noqa: ANN001
    SuppressionPolicy.objects.create(account=owner, soft_bounce_days=2)
    delivery = sent_to(owner, "ann@reader.example")
    bounce(delivery, "dsn_mailbox_full.eml", days_ago=2)
    bounce(delivery, "dsn_mailbox_full.eml")
    assert statuses(delivery) == {"bounced"}

    assert suppression.lift(delivery.subscriber, actor=owner, note="mailbox cleaned up") == 1

    subscription = Subscription.objects.get(subscriber=delivery.subscriber)
    lifted = subscription.changes.last()
    assert (lifted.old_status, lifted.new_status, lifted.actor) == ("bounced", "confirmed", owner)
    assert lifted.note == "suppression lifted: mailbox cleaned up"
    bounce(delivery, "dsn_mailbox_full.eml")  # one day since the lift: below the rule
    assert statuses(delivery) == {"confirmed"}


# -- with the send pipeline ---------------------------------------------------------------


@pytest.fixture
def scripted_relay() -> Iterator[object]:
    controllers = []

    def start(script: dict[str, list[str]]) -> tuple[object, Relay]:
        controller, handler, port = scripted_smtp.start(script)
        controllers.append(controller)
        relay = Relay.objects.create(
            name=f"scripted{port}", host="127.0.0.1", port=port, security="none",
            rate_per_second=1000,
        )  # fmt: skip
        return handler, relay

    yield start
    smtp.pool.close_all()
    for controller in controllers:
        controller.stop()


@pytest.mark.usefixtures("celery_eager")
def test_a_hard_bounce_after_planning_stops_the_planned_mail(
    owner, scripted_relay, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    earlier = sent_to(owner, "ann@reader.example", mailing_list=mailing_list)
    for n in range(2):
        SubscriptionFactory(mailing_list=mailing_list, subscriber__email=f"r{n}@reader.example")
    subscriptions.recount([mailing_list.id])
    handler, _relay = scripted_relay({})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        dispatch.tick()  # planned, not sent

    bounce(earlier, "dsn_user_unknown.eml")  # from an earlier campaign
    for send in queued:
        send()
    run_pipeline(settings, django_capture_on_commit_callbacks)

    rcpts = sorted(m.rcpt_tos[0] for m in handler.messages)
    assert rcpts == ["r0@reader.example", "r1@reader.example"]


@pytest.mark.usefixtures("celery_eager")
@pytest.mark.parametrize(
    ("reply", "bounce_class", "status"),
    [
        ("550 5.1.1 No such user here", "hard", "bounced"),
        ("550 5.7.1 Rejected by policy: sender domain has no SPF", "sender_side", "confirmed"),
    ],
)
def test_a_5xx_at_our_relay_is_recorded_as_a_bounce_event(
    owner, scripted_relay, settings, django_capture_on_commit_callbacks, reply, bounce_class, status
) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list, subscriber__email="ann@reader.example")
    SubscriptionFactory(mailing_list=mailing_list, subscriber__email="bob@reader.example")
    subscriptions.recount([mailing_list.id])
    scripted_relay({"ann@reader.example": [reply]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)

    run_pipeline(settings, django_capture_on_commit_callbacks)

    event = BounceEvent.objects.get()
    refused = Delivery.objects.get(subscriber__email="ann@reader.example")
    assert (event.source, event.delivery, event.campaign) == ("smtp", refused, campaign)
    assert event.bounce_class == bounce_class and event.reply_code == "550"
    assert event.relay_id == refused.relay_id and event.account == owner
    subscription = Subscription.objects.get(subscriber__email="ann@reader.example")
    assert subscription.status == status
