from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from bounces import mailboxes, receipts


@shared_task(ignore_result=True)
def poll_mailboxes() -> None:
    """Beat tick: one poll task per enabled mailbox, so a slow server holds up only its own."""
    for mailbox_id in mailboxes.poll_due():
        poll_mailbox.delay(mailbox_id)


# Stopped before the mailbox's lease (mailboxes.LEASE, 10 minutes) runs out, so a second
# worker never polls a mailbox this one is still working on.
@shared_task(ignore_result=True, soft_time_limit=9 * 60, time_limit=9 * 60 + 30)
def poll_mailbox(mailbox_id: int) -> None:
    mailboxes.poll(mailbox_id)


@shared_task(ignore_result=True)
def prune_provider_receipts() -> int:
    """Beat: forgets ESP delivery-report receipts too old for the ESP to post them again."""
    return receipts.prune(timedelta(days=settings.PROVIDER_RECEIPT_KEEP_DAYS))
