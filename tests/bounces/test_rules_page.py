"""Settings -> Bounce rules: an owner sees and changes the rules of their own account only;
the sender-side alert threshold is the operators' (one counter serves every account)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from bounces import intake
from bounces.models import SenderSideAlert, SuppressionPolicy
from lists.models import ListRole, Subscription
from sending.models import Relay
from tests.bounces.returned import message, sent_to, verp_address

pytestmark = pytest.mark.django_db

RULES = reverse("bounces:rules")
CHANGED = {"suppress_hard": "on", "soft_bounce_days": "5", "soft_bounce_window_days": "30"}


def policy_of(user: object) -> tuple:
    policy = SuppressionPolicy.for_account(user.pk)  # type: ignore[attr-defined]
    return (
        policy.suppress_hard,
        policy.suppress_complaint,
        policy.soft_bounce_days,
        policy.soft_bounce_window_days,
    )


def test_the_page_needs_a_login(client) -> None:  # noqa: ANN001
    response = client.get(RULES)
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_an_owner_sees_the_defaults_then_changes_their_rules(owner_client, owner) -> None:  # noqa: ANN001
    page = owner_client.get(RULES).content.decode()
    assert 'name="soft_bounce_days" value="3"' in page
    assert 'name="soft_bounce_window_days" value="14"' in page
    assert "threshold" not in page

    response = owner_client.post(RULES, CHANGED)

    assert response.status_code == 302 and response.url == RULES
    assert policy_of(owner) == (True, False, 5, 30)


def test_a_post_changes_only_the_posters_own_rules(client, owner, stranger) -> None:  # noqa: ANN001
    SuppressionPolicy.objects.create(account=stranger, soft_bounce_days=2)
    client.force_login(owner)

    client.post(RULES, {**CHANGED, "account": stranger.pk})

    assert policy_of(owner) == (True, False, 5, 30)
    assert policy_of(stranger) == (True, True, 2, 14)


@pytest.mark.parametrize(
    ("days", "window"),
    [("0", "14"), ("31", "365"), ("3", "0"), ("3", "366"), ("10", "7"), ("x", "14")],
)
def test_rules_out_of_range_are_refused(owner_client, owner, days: str, window: str) -> None:  # noqa: ANN001
    response = owner_client.post(
        RULES, {**CHANGED, "soft_bounce_days": days, "soft_bounce_window_days": window}
    )
    assert response.status_code == 200 and response.context["form"].errors
    assert not SuppressionPolicy.objects.filter(account=owner).exists()


def test_the_account_page_and_the_bounce_report_link_to_the_rules(owner_client, owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    assert RULES in owner_client.get(reverse("account")).content.decode()
    for url in (
        reverse("bounces:campaign", args=[delivery.campaign.uuid]),
        reverse("bounces:list", args=[delivery.campaign.lists.first().uuid]),
    ):
        assert RULES in owner_client.get(url).content.decode()


def test_a_delegate_is_not_sent_to_their_own_rules_from_a_list_not_theirs(
    client, owner, delegate
) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    mailing_list = Subscription.objects.get(subscriber=delivery.subscriber).mailing_list
    ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="viewer")
    client.force_login(delegate)
    page = client.get(reverse("bounces:list", args=[mailing_list.uuid]))
    assert page.status_code == 200 and RULES not in page.content.decode()


def test_the_sender_side_threshold_is_the_operators_not_an_accounts(
    owner, stranger, operator, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    # Two accounts share a relay; refusals of both count on one counter and alert once.
    settings.BOUNCE_SENDER_SIDE_ALERT_THRESHOLD = 2
    relay = Relay.objects.create(name="shared", host="127.0.0.1", port=25, security="none")
    with django_capture_on_commit_callbacks(execute=True):
        for account in (owner, stranger):
            delivery = sent_to(account, "ann@reader.example", relay=relay)
            raw = message("dsn_blocklisted.eml", recipient="ann@reader.example")
            intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    alert = SenderSideAlert.objects.get()
    assert alert.counter.count == 2 and len(mail.outbox) == 1
