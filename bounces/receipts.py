"""How long the receipts of ESP delivery reports are kept.

A ``ProviderEventReceipt`` is what makes a replayed delivery report count once. One is
written per report, so with an ESP reporting deliveries the table grows by a row per
message sent. ESPs repeat a failed webhook post for hours, a few days at the most, so
a receipt older than ``PROVIDER_RECEIPT_KEEP_DAYS`` (30 by default) protects against
nothing and is removed.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from bounces.models import ProviderEventReceipt

# Rows per DELETE: each batch is a short transaction, so pruning months of receipts
# after an upgrade never holds locks or one huge WAL burst for long.
BATCH = 10_000


def prune(older_than: timedelta) -> int:
    """Deletes receipts received before ``now - older_than``; returns how many."""
    old = ProviderEventReceipt.objects.filter(received_at__lt=timezone.now() - older_than)
    removed = 0
    while ids := list(old.order_by("received_at").values_list("id", flat=True)[:BATCH]):
        removed += ProviderEventReceipt.objects.filter(id__in=ids).delete()[0]
    return removed
