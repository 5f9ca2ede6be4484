"""What operators do with quarantined input: reprocess it (after a parser fix) or discard it."""

from __future__ import annotations

from django.utils import timezone

from bounces import intake
from bounces.models import QuarantinedMessage, Source

Status = QuarantinedMessage.Status


def reprocess(message: QuarantinedMessage, *, actor: object) -> int:
    """Runs a waiting message through the intake again; returns how many events it made.

    Success marks it reprocessed; a second failure keeps it waiting with the new reason.
    Provider payloads are not messages: their webhook has to be replayed by the provider.
    """
    if message.status != Status.WAITING:
        return 0
    if message.source == Source.WEBHOOK:
        message.reason = f"{message.reason} (a webhook payload cannot be reprocessed as mail)"[
            :2000
        ]
        message.save(update_fields=["reason"])
        return 0
    events, reason = intake.try_record(
        bytes(message.raw),
        source=message.source,
        envelope_recipient=message.envelope_recipient or None,
    )
    if events:
        _handle(message, Status.REPROCESSED, actor)
    else:
        message.reason = f"reprocessed, still: {reason}"[:2000]
        message.save(update_fields=["reason"])
    return len(events)


def discard(message: QuarantinedMessage, *, actor: object) -> bool:
    """Marks a waiting message discarded (the row and its raw bytes stay for the record)."""
    if message.status != Status.WAITING:
        return False
    _handle(message, Status.DISCARDED, actor)
    return True


def _handle(message: QuarantinedMessage, status: str, actor: object) -> None:
    now = timezone.now()
    updated = QuarantinedMessage.objects.filter(id=message.id, status=Status.WAITING).update(
        status=status, handled_by=actor, handled_at=now
    )
    if updated:
        message.status, message.handled_by, message.handled_at = status, actor, now
