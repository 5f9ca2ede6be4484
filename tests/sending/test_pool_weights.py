"""Relays share a campaign by weight: each batch is drawn by weight among the healthy
relays the account may use, so one campaign's batches spread over all of them."""

from __future__ import annotations

import pytest
from django.db.models import Count

from campaigns import scheduling
from sending.models import Delivery
from tests.sending.test_failures import audience
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def test_a_campaigns_batches_share_the_relays_by_weight(
    owner, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    settings.SEND_BATCH_SIZE = 5
    mailing_list, emails = audience(owner, 80)  # 16 batches
    heavy, heavy_relay = scripted(name="heavy", weight=300)
    light, light_relay = scripted(name="light", weight=100)
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)

    run_pipeline(settings, django_capture_on_commit_callbacks)

    received = [m.rcpt_tos[0] for m in heavy.messages + light.messages]
    assert sorted(received) == sorted(emails)
    # 3:1 is 60 and 20; a batch more or less either way.
    assert 50 <= len(heavy.messages) <= 70, (len(heavy.messages), len(light.messages))
    relays_per_batch = (
        Delivery.objects.filter(campaign=campaign)
        .values("batch")
        .annotate(relays=Count("relay", distinct=True))
    )
    # A batch keeps to its relay (one connection for the whole batch).
    assert {row["relays"] for row in relays_per_batch} == {1}
