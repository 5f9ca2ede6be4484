"""A delivery still deferred when its retry deadline passes fails as a 5xx refusal does:
counted in the campaign's statistics and shown on its bounce page, with the relay's
last temporary reply as the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bounces.models import BounceEvent
from campaigns import scheduling
from campaigns.models import Campaign
from sending.models import Delivery
from stats.models import CampaignStats, TrackingEvent
from tests.sending.test_failures import audience, delivery_of
from tests.sending.test_pipeline import make_campaign, run_pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def test_a_delivery_deferred_past_the_deadline_is_recorded_as_a_temporary_failure(
    owner, owner_client, scripted, settings, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    mailing_list, emails = audience(owner, 2)
    full = "452 4.2.2 Mailbox full, try again later"
    scripted({emails[0]: [full]})
    campaign = make_campaign(owner, [mailing_list])
    scheduling.schedule(campaign)
    run_pipeline(settings, django_capture_on_commit_callbacks)
    deferred = delivery_of(emails[0])
    assert deferred.status == "deferred"
    assert not TrackingEvent.objects.filter(delivery_id=deferred.id).exists()

    Delivery.objects.filter(id=deferred.id).update(created_at=timezone.now() - timedelta(hours=25))
    run_pipeline(settings, django_capture_on_commit_callbacks)

    failed = delivery_of(emails[0])
    assert (failed.status, failed.smtp_code) == ("failed", 452)
    assert "Mailbox full" in failed.smtp_response
    # As for a 5xx: the delivery failed, and the bounce intake counts a bounce.
    kinds = TrackingEvent.objects.filter(delivery_id=failed.id).values_list("kind", flat=True)
    assert sorted(kinds) == ["bounced", "failed"]
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.sent, stats.failed) == (1, 1)
    bounce = BounceEvent.objects.get(delivery=failed)
    assert (bounce.bounce_class, bounce.reply_code, bounce.status_code) == ("soft", "452", "4.2.2")
    assert "Mailbox full" in bounce.diagnostic and bounce.recipient == emails[0]
    page = owner_client.get(reverse("bounces:campaign", args=[campaign.uuid]))
    assert page.status_code == 200 and emails[0].encode() in page.content
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    # Recorded once: later ticks find nothing more to fail.
    run_pipeline(settings, django_capture_on_commit_callbacks)
    assert BounceEvent.objects.filter(delivery=failed).count() == 1
    assert TrackingEvent.objects.filter(delivery_id=failed.id).count() == 2
