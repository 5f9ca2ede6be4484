from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns import scheduling
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
