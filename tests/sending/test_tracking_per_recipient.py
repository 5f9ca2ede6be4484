"""A list owner's tracking switch holds for every subscriber of that list: a recipient on
any target list with tracking off is not tracked, even when another target list of the
campaign tracks and also reaches them."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import links, scheduling
from sending import dispatch
from sending.models import SendBatch
from sending.tasks import send_batch
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

PIXEL = 'width="1" height="1"'


def html_part(data: bytes) -> str:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    return parsed.get_body(preferencelist=("html",)).get_content()


def on(lists, owner):  # noqa: ANN001, ANN201
    subscriber = SubscriberFactory(account=owner)
    for mailing_list in lists:
        SubscriptionFactory(mailing_list=mailing_list, subscriber=subscriber)
    return subscriber.email


def test_a_recipient_on_a_list_with_tracking_off_is_not_tracked(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    tracking = MailingListFactory(owner=owner)
    quiet = MailingListFactory(owner=owner, track_opens=False, track_clicks=False)
    no_opens = MailingListFactory(owner=owner, track_opens=False, track_clicks=True)
    tracked = on([tracking], owner)
    also_quiet = on([tracking, quiet], owner)  # reached through the tracking list too
    only_quiet = on([quiet], owner)
    clicks_only = on([tracking, no_opens], owner)
    handler, _ = scripted()
    campaign = make_campaign(owner, [tracking, quiet, no_opens])
    scheduling.schedule(campaign)

    run_pipeline(settings, django_capture_on_commit_callbacks)

    html = {m.rcpt_tos[0]: html_part(m.data) for m in handler.messages}
    assert set(html) == {tracked, also_quiet, only_quiet, clicks_only}
    opened, clicked = links.open_url_prefix(), links.click_url_prefix()
    assert opened in html[tracked] and clicked in html[tracked]
    assert 'href="https://example.com/a"' not in html[tracked]
    for address in (also_quiet, only_quiet):
        assert opened not in html[address] and clicked not in html[address]
        assert PIXEL not in html[address]  # no pixel at all, not even a blank one
        assert 'href="https://example.com/a"' in html[address]
        assert "?t=" not in html[address]
    assert opened not in html[clicks_only] and PIXEL not in html[clicks_only]
    assert clicked in html[clicks_only]
    # Everything else is the same message.
    assert html[tracked].count("Hello") == html[also_quiet].count("Hello") == 1


def send_counting_queries(owner, recipients: int, capture) -> tuple[int, set[str]]:  # noqa: ANN001
    """Sends a one-batch campaign to recipients of which every other one is also on a
    list without tracking; returns the queries of the batch and those addresses."""
    tracking = MailingListFactory(owner=owner)
    quiet = MailingListFactory(owner=owner, track_opens=False, track_clicks=False)
    untracked = set()
    for i in range(recipients):
        if i % 2:
            untracked.add(on([tracking, quiet], owner))
        else:
            on([tracking], owner)
    campaign = make_campaign(owner, [tracking, quiet])
    scheduling.schedule(campaign)
    with capture(execute=False):
        dispatch.start_due(campaign.send_at)
    (batch,) = SendBatch.objects.filter(campaign=campaign)
    with CaptureQueriesContext(connection) as queries:
        send_batch.delay(batch.id)
    return len(queries), untracked


def test_the_per_recipient_choice_costs_no_query_per_recipient(
    owner, scripted, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    handler, _ = scripted()
    few, quiet_few = send_counting_queries(owner, 4, django_capture_on_commit_callbacks)
    many, quiet_many = send_counting_queries(owner, 24, django_capture_on_commit_callbacks)
    assert len(handler.messages) == 28
    opened = links.open_url_prefix()
    untracked = [m for m in handler.messages if m.rcpt_tos[0] in quiet_few | quiet_many]
    assert len(untracked) == 14
    assert not [m for m in untracked if opened in html_part(m.data)]
    assert few == many
