from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns import scheduling
from sending import dispatch
from sending.models import Delivery
from tests.factories import MailingListFactory, SubscriptionFactory
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


@pytest.fixture
def sent_campaign(owner, scripted, settings, django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    subs = [SubscriptionFactory(mailing_list=mailing_list) for _ in range(4)]
    scripted({subs[0].subscriber.email: ["550 5.1.1 unknown user"]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    return campaign


def test_owner_sees_the_delivery_figures(client, owner, sent_campaign) -> None:  # noqa: ANN001
    client.force_login(owner)
    response = client.get(reverse("sending:campaign-progress", args=[sent_campaign.uuid]))
    assert response.status_code == 200
    progress = response.context["progress"]
    assert (progress.total, progress.sent, progress.failed, progress.remaining) == (4, 3, 1, 0)
    assert progress.per_relay == [("main", 3)]
    assert b"hx-trigger" not in response.content  # a sent campaign is not polled
    assert Delivery.objects.filter(campaign=sent_campaign).count() == 4


def test_stranger_gets_404(client, stranger, sent_campaign) -> None:  # noqa: ANN001
    client.force_login(stranger)
    response = client.get(reverse("sending:campaign-progress", args=[sent_campaign.uuid]))
    assert response.status_code == 404


def test_the_campaign_page_shows_the_delivery_figures(owner_client, sent_campaign) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("campaigns:detail", args=[sent_campaign.uuid]))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="send-progress"' in page
    assert "<dt>Sent</dt><dd>3 of 4</dd>" in page
    assert "<dt>Failed</dt><dd>1</dd>" in page
    assert "<dt>Relay main</dt><dd>3 sent</dd>" in page
    assert "hx-trigger" not in page  # finished: nothing to poll


def test_a_sending_campaign_page_polls_its_progress(
    owner_client, owner, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch.tick()  # planned and started; the batch has not run
    response = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid]))
    page = response.content.decode()
    poll = reverse("sending:campaign-progress", args=[campaign.uuid])
    assert f'hx-get="{poll}"' in page and 'hx-trigger="every 2s"' in page
    assert "Current rate" in page and "Estimated finish" in page
    # The panel is refreshed by htmx attributes only: the CSP allows no inline script.
    assert "<script>" not in page


def test_a_draft_has_no_delivery_panel(owner_client, owner) -> None:  # noqa: ANN001
    campaign = make_campaign(owner, [MailingListFactory(owner=owner)])
    response = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid]))
    assert 'id="send-progress"' not in response.content.decode()
