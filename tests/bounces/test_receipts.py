"""Pruning the receipts of ESP delivery reports: old ones go in short batches, recent
ones stay to recognise a post the ESP sends again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bounces import receipts
from bounces.models import ProviderEventReceipt

pytestmark = pytest.mark.django_db


def receipt(event_id: str, age: timedelta) -> ProviderEventReceipt:
    made = ProviderEventReceipt.objects.create(provider="sendgrid", provider_event_id=event_id)
    # received_at is set on creation; moved back as if it had come long ago.
    ProviderEventReceipt.objects.filter(id=made.id).update(received_at=timezone.now() - age)
    return made


def test_receipts_older_than_the_window_go_and_newer_ones_stay() -> None:
    receipt("old", timedelta(days=31))
    receipt("edge", timedelta(days=29, hours=23))
    receipt("new", timedelta(minutes=1))

    assert receipts.prune(timedelta(days=30)) == 1

    left = ProviderEventReceipt.objects.values_list("provider_event_id", flat=True)
    assert sorted(left) == ["edge", "new"]


def test_pruning_goes_in_batches_until_no_old_receipt_is_left(
    monkeypatch, django_assert_num_queries
) -> None:  # noqa: ANN001
    monkeypatch.setattr(receipts, "BATCH", 2)
    for i in range(5):
        receipt(f"old-{i}", timedelta(days=40 + i))
    receipt("new", timedelta(hours=1))

    # Three batches (2, 2, 1), each a select and a delete, then one select that finds none.
    with django_assert_num_queries(7):
        assert receipts.prune(timedelta(days=30)) == 5

    assert list(ProviderEventReceipt.objects.values_list("provider_event_id", flat=True)) == ["new"]
