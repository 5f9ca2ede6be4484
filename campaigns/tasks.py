from __future__ import annotations

from smtplib import SMTPServerDisconnected

from celery import shared_task

from campaigns import testsend
from campaigns.models import Campaign


@shared_task(
    autoretry_for=(SMTPServerDisconnected, ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=3,
)
def send_test(campaign_id: int, addresses: list[str]) -> None:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        testsend.send_test(campaign, addresses)
