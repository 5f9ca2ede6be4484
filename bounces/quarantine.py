"""What operators do with quarantined input: reprocess it (after a parser fix) or discard it."""

from __future__ import annotations

from django.utils import timezone

from bounces import intake, webhooks
from bounces.models import QuarantinedMessage, Source

Status = QuarantinedMessage.Status


def reprocess(message: QuarantinedMessage, *, actor: object) -> bool:
    """Runs a waiting message through its intake again; returns whether it is now handled.

    A returned message goes through the mail intake; a provider payload through the webhook
    receiver's conversion and recording (webhooks.replay()), where provider event ids keep
    what was already recorded from counting twice. Success marks it reprocessed; a failure
    keeps it waiting with the reason of this attempt, replacing the last one's.
    """
    if message.status != Status.WAITING:
        return False
    if message.source == Source.WEBHOOK:
        handled, reason = webhooks.replay(
            message.provider, bytes(message.raw), message.provider_event_id
        )
    else:
        events, reason = intake.try_record(
            bytes(message.raw),
            source=message.source,
            envelope_recipient=message.envelope_recipient or None,
        )
        handled = bool(events)
    if handled:
        _handle(message, Status.REPROCESSED, actor)
    else:
        message.reason = intake.storable(f"reprocessed, still: {reason}")[:2000]
        message.save(update_fields=["reason"])
    return handled


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
