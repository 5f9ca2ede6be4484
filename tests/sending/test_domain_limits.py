"""Operators' per-recipient-domain limits: a recipient over its domain's limit waits,
the others go on; the limit is a bucket in Redis that every worker shares."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from campaigns import scheduling
from campaigns.models import Campaign
from lists import subscriptions
from lists.models import Subscriber, Subscription
from sending.models import Delivery, RecipientDomainLimit
from sending.ratelimit import DomainLimits
from tests.factories import MailingListFactory
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def audience_at(owner, domains: dict[str, int]):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    subscribers = Subscriber.objects.bulk_create(
        [Subscriber(account=owner, email=f"r{i}@{domain}", domain=domain)
         for domain, count in domains.items() for i in range(count)]
    )  # fmt: skip
    Subscription.objects.bulk_create(
        [Subscription(mailing_list=mailing_list, subscriber=s, status="confirmed")
         for s in subscribers]
    )  # fmt: skip
    subscriptions.recount([mailing_list.id])
    return mailing_list


@pytest.fixture
def slow_domain() -> str:
    domain = f"slow{time.time_ns()}.example"  # a bucket of its own in the shared Redis
    RecipientDomainLimit.objects.create(domain=domain, per_minute=60)
    return domain


@pytest.mark.redis
def test_recipients_over_their_domains_limit_wait_and_the_others_go_on(
    owner, scripted, slow_domain, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001, E501
    handler, _ = scripted()
    campaign = make_campaign(owner, [audience_at(owner, {slow_domain: 3, "other.example": 5})])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)

    received = [m.rcpt_tos[0] for m in handler.messages]
    assert sum(r.endswith("@other.example") for r in received) == 5
    assert sum(r.endswith(slow_domain) for r in received) == 1  # 60 a minute: one a second
    held = Delivery.objects.filter(status="deferred")
    assert held.count() == 2
    assert {d.attempts for d in held} == {0}  # waiting is not a failed attempt
    assert all("per-domain limit" in d.smtp_response for d in held)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING

    deadline = time.monotonic() + 15
    while campaign.status != Campaign.Status.SENT and time.monotonic() < deadline:
        time.sleep(0.5)
        run_pipeline(settings, django_capture_on_commit_callbacks)
        campaign.refresh_from_db()
    received = [m.rcpt_tos[0] for m in handler.messages]
    assert len(received) == len(set(received)) == 8
    assert campaign.status == Campaign.Status.SENT


@pytest.mark.redis
def test_the_held_recipients_come_back_spread_at_the_domains_rate(slow_domain) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    limits = DomainLimits(client, {slow_domain: 120})  # two a second
    assert limits.hold(slow_domain) == 0 and limits.hold(slow_domain) == 0  # the burst
    waits = [limits.hold(slow_domain) for _ in range(3)]
    assert 0 < waits[0] <= 0.5
    assert waits[1] == pytest.approx(waits[0] + 0.5, abs=0.05)
    assert waits[2] == pytest.approx(waits[0] + 1, abs=0.05)
    assert limits.hold("unlimited.example") == 0


def test_operator_adds_a_domain_limit_in_the_admin(operator_client) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:sending_recipientdomainlimit_add"),
        {"domain": " GMail.com ", "per_minute": "300", "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    limit = RecipientDomainLimit.objects.get()
    assert (limit.domain, limit.per_minute, limit.enabled) == ("gmail.com", 300, True)
    listing = operator_client.get(reverse("admin:sending_recipientdomainlimit_changelist"))
    assert b"gmail.com" in listing.content
