from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from mailpanel import outbox


@shared_task
def prune_outbox() -> int:
    return outbox.prune(timedelta(days=settings.OUTBOX_KEEP_DAYS))
