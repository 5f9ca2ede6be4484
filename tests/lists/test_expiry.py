"""Pending subscriptions expire by the time they became pending, whatever their source."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lists import subscriptions
from lists.models import Subscriber, Subscription
from tests.factories import SubscriberFactory
from tests.lists.test_signup_support import *  # noqa: F403
from tests.lists.test_signup_support import post_signup

pytestmark = pytest.mark.django_db


def pending_on(mailing_list, source: str, email: str = "pat@example.org") -> Subscription:  # noqa: ANN001
    subscriber = SubscriberFactory(account=mailing_list.owner, email=email)
    subscription, _ = subscriptions.subscribe(
        mailing_list, subscriber, status="pending", source=source
    )
    return subscription


def age(subscription: Subscription, days: float, *, mailed_days: float | None = None) -> None:
    now = timezone.now()
    Subscription.objects.filter(id=subscription.id).update(
        status_changed_at=now - timedelta(days=days),
        confirmation_sent_at=None if mailed_days is None else now - timedelta(days=mailed_days),
    )


@pytest.mark.parametrize("source", ["form", "import", "panel", "api"])
def test_a_pending_subscription_of_every_source_expires(mailing_list, settings, source):
    old = pending_on(mailing_list, source, "old@example.org")
    fresh = pending_on(mailing_list, source, "fresh@example.org")
    age(old, settings.PENDING_EXPIRY_DAYS + 1)
    age(fresh, settings.PENDING_EXPIRY_DAYS - 1)

    assert subscriptions.expire_pending() == 1

    assert list(Subscription.objects.values_list("id", flat=True)) == [fresh.id]
    mailing_list.refresh_from_db()
    assert mailing_list.pending_count == 1


@pytest.mark.parametrize("source", ["import", "panel", "api"])
def test_what_the_owner_brought_stays_in_the_account(mailing_list, settings, source):
    subscription = pending_on(mailing_list, source)
    age(subscription, settings.PENDING_EXPIRY_DAYS + 1)

    assert subscriptions.expire_pending() == 1
    assert Subscriber.objects.filter(id=subscription.subscriber_id).exists()


def test_it_counts_from_when_the_subscription_became_pending(mailing_list, settings):
    # Created long ago and confirmed, unsubscribed, then made pending again yesterday.
    subscription = pending_on(mailing_list, "panel")
    Subscription.objects.filter(id=subscription.id).update(
        created_at=timezone.now() - timedelta(days=90)
    )
    age(subscription, 1, mailed_days=60)

    assert subscriptions.expire_pending() == 0
    age(subscription, settings.PENDING_EXPIRY_DAYS + 1, mailed_days=60)
    assert subscriptions.expire_pending() == 1


def test_confirmed_and_unsubscribed_subscriptions_never_expire(mailing_list, settings):
    for status in ("confirmed", "unsubscribed", "bounced"):
        subscriber = SubscriberFactory(account=mailing_list.owner, email=f"{status}@example.org")
        subscription, _ = subscriptions.subscribe(
            mailing_list, subscriber, status=status, source="panel"
        )
        age(subscription, settings.PENDING_EXPIRY_DAYS * 3)

    assert subscriptions.expire_pending() == 0
    assert Subscription.objects.count() == 3


@pytest.mark.parametrize("old_source", ["import", "panel", "api"])
def test_a_form_signup_of_a_pending_address_records_the_form_as_source(
    form, mailing_list, settings, old_source
):
    subscription = pending_on(mailing_list, old_source, "new.reader@example.org")
    age(subscription, settings.PENDING_EXPIRY_DAYS - 1)

    assert post_signup(form).status_code == 200

    subscription.refresh_from_db()
    assert (subscription.status, subscription.source) == ("pending", "form")


def test_a_form_signup_of_an_unsubscribed_address_records_the_form_and_expires(
    form, mailing_list, settings
):
    subscriber = SubscriberFactory(account=mailing_list.owner, email="new.reader@example.org")
    subscription, _ = subscriptions.subscribe(
        mailing_list, subscriber, status="unsubscribed", source="import"
    )

    assert post_signup(form).status_code == 200

    subscription.refresh_from_db()
    assert (subscription.status, subscription.source) == ("pending", "form")
    age(subscription, settings.PENDING_EXPIRY_DAYS + 1, mailed_days=settings.PENDING_EXPIRY_DAYS)
    assert subscriptions.expire_pending() == 1
    assert not Subscription.objects.exists()


def test_an_unconfirmed_form_signup_leaves_no_subscriber_behind(form, settings):
    assert post_signup(form).status_code == 200
    subscription = Subscription.objects.get()
    age(subscription, settings.PENDING_EXPIRY_DAYS + 1, mailed_days=settings.PENDING_EXPIRY_DAYS)

    assert subscriptions.expire_pending() == 1
    assert not Subscriber.objects.exists()


def test_a_subscriber_with_a_consent_record_is_kept_when_a_form_signup_expires(
    form, mailing_list, settings
):
    # Imported once (the owner vouched), unsubscribed, then signed up through a form again.
    subscriber = SubscriberFactory(
        account=mailing_list.owner, email="new.reader@example.org", consent={"source": "import"}
    )
    subscriptions.subscribe(mailing_list, subscriber, status="unsubscribed", source="import")
    post_signup(form)
    age(Subscription.objects.get(), settings.PENDING_EXPIRY_DAYS + 1, mailed_days=8)

    assert subscriptions.expire_pending() == 1
    assert Subscriber.objects.filter(id=subscriber.id).exists()
