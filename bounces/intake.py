"""Every bounce source ends here: store one BounceEvent per failed recipient, then apply rules.

The raw input is stored before any rule acts on it, so a rule that fails leaves an event
with ``applied=False`` instead of a lost bounce. Input nothing understands is quarantined
with a reason. The only exception that leaves these functions is a database error while
storing, which the caller must see (the pipe command then tells the MTA to retry).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from bounces import attribution, parse, suppression
from bounces.classify import classify
from bounces.models import BounceClass, BounceEvent, QuarantinedMessage, Source
from bounces.parse import STATUS_RE, RecipientResult
from campaigns.models import Campaign
from lists import addresses
from sending.models import Delivery

logger = logging.getLogger(__name__)


def quarantine(
    raw: bytes | str,
    *,
    source: str,
    reason: str,
    provider: str = "",
    envelope_recipient: str = "",
) -> QuarantinedMessage:
    """Keeps input that no rule could act on for an operator; returns the stored row."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    logger.warning("bounce input quarantined (%s): %s", source, reason)
    return QuarantinedMessage.objects.create(
        source=source,
        provider=provider,
        raw=bytes(raw),
        envelope_recipient=(envelope_recipient or "")[:254],
        reason=reason[:2000],
    )


def record_message(
    raw: bytes, *, source: str, envelope_recipient: str | None = None
) -> list[BounceEvent]:
    """Parses a returned message, stores one event per failed recipient, then applies rules.

    Returns the stored events; an empty list means the message was quarantined. Raises only
    DatabaseError, when neither events nor a quarantine row could be stored.
    """
    raw = bytes(raw or b"")
    events, reason = try_record(raw, source=source, envelope_recipient=envelope_recipient)
    if not events:
        quarantine(raw, source=source, reason=reason, envelope_recipient=envelope_recipient or "")
    return events


def try_record(
    raw: bytes, *, source: str, envelope_recipient: str | None = None
) -> tuple[list[BounceEvent], str]:
    """record_message without the quarantine: returns (events, why there are none).

    Reprocessing a quarantined message uses this, so a second failure does not store a
    second copy. Raises only DatabaseError.
    """
    try:
        parsed = parse.parse_bounce(raw, envelope_recipient)
        if not parsed.results:
            reason = parsed.reason or "no failed recipient found"
            if parsed.detector_errors:
                reason += "; detectors that raised: " + "; ".join(parsed.detector_errors)
            return [], reason[:2000]
        events = _store_parsed(raw, parsed, source, envelope_recipient)
    except DatabaseError:
        raise
    except Exception as exc:  # the contract: bad input is quarantined, never raised
        logger.exception("bounce intake failed")
        return [], f"intake error: {exc!r}"[:500]
    _apply_all(events)
    return events, ""


def _store_parsed(
    raw: bytes, parsed: parse.ParsedBounce, source: str, envelope_recipient: str | None
) -> list[BounceEvent]:
    text = parse.normalise_line_endings(raw).decode("utf-8", errors="replace")
    now = timezone.now()
    events = []
    only_one = len(parsed.results) == 1
    for result in parsed.results:
        found = attribution.attribute(
            result.recipient,
            envelope_recipient=envelope_recipient,
            verp_token=parsed.verp_token,
            message_id=result.original_message_id or parsed.original_message_id,
            only_recipient=only_one,
        )
        events.append(_event(result, classify(result), found, source=source, raw=text, at=now))
    with transaction.atomic():
        return BounceEvent.objects.bulk_create(events)


def _event(
    result: RecipientResult,
    bounce_class: str,
    found: attribution.Attribution,
    *,
    source: str,
    raw: str,
    at: datetime,
    **extra: str,
) -> BounceEvent:
    recipient = result.recipient or (found.subscriber.email if found.subscriber else "")
    return BounceEvent(
        source=source,
        received_at=at,
        delivery=found.delivery,
        campaign_id=found.campaign_id,
        account_id=found.account_id,
        subscriber=found.subscriber,
        relay_id=found.relay_id,
        recipient=recipient[:254],
        bounce_class=bounce_class,
        status_code=result.status[:16],
        reply_code=result.reply_code[:8],
        diagnostic=result.diagnostic,
        receiving_domain=_domain(recipient),
        raw=raw,
        **extra,
    )


def _domain(address: str) -> str:
    try:
        return addresses.domain_of(address)[:253]
    except (addresses.InvalidAddress, ValueError, IndexError):
        return address.rpartition("@")[2].lower()[:253]


def _apply_all(events: Iterable[BounceEvent]) -> None:
    for event in events:
        try:
            suppression.apply(event)
        except Exception:
            # The event is stored (applied=False): the input is safe, so the caller must not
            # resend it. The admin's "apply rules" action runs the rules again.
            logger.exception("bounce rules failed for event %s", event.pk)


def record_provider_event(
    *,
    provider: str,
    event_id: str,
    recipient: str,
    bounce_class: str,
    status_code: str = "",
    reply_code: str = "",
    diagnostic: str = "",
    message_id: str = "",
    payload: str,
    occurred_at: datetime | None = None,
) -> BounceEvent | None:
    """Stores one normalised ESP event and applies the rules.

    De-duplicated by (provider, event_id): a replay returns None and changes nothing. An
    event with an unknown class is quarantined and also returns None.
    """
    if bounce_class not in BounceClass.values:
        quarantine(
            payload,
            source=Source.WEBHOOK,
            provider=provider,
            reason=f"unknown bounce class {bounce_class!r}",
        )
        return None
    if (
        event_id
        and BounceEvent.objects.filter(provider=provider, provider_event_id=event_id).exists()
    ):
        return None
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    found = attribution.attribute(recipient, message_id=message_id)
    result = RecipientResult(
        recipient=recipient, status=status_code, reply_code=reply_code, diagnostic=diagnostic
    )
    event = _event(
        result,
        bounce_class,
        found,
        source=Source.WEBHOOK,
        raw=payload,
        at=occurred_at or timezone.now(),
        provider=provider[:32],
        provider_event_id=event_id[:255],
    )
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError:  # the same event arrived twice at once
        return None
    _apply_all([event])
    return event


def record_smtp_failures(deliveries: Iterable[Delivery]) -> list[BounceEvent]:
    """Stores a BounceEvent for each delivery our relay refused with 5xx, then applies rules.

    The reply text decides the class, as for a returned message: a 5.7.x policy refusal is
    the sender's problem, not a dead address. Expects ``subscriber`` loaded; a couple of
    queries store the whole chunk, then each event's rules run.
    """
    refused = [d for d in deliveries if d.smtp_code and 500 <= d.smtp_code < 600]
    if not refused:
        return []
    accounts = dict(
        Campaign.objects.filter(id__in={d.campaign_id for d in refused}).values_list(
            "id", "account_id"
        )
    )
    now = timezone.now()
    events = []
    for delivery in refused:
        if not delivery.smtp_code or not 500 <= delivery.smtp_code < 600:
            continue
        response = delivery.smtp_response or ""
        status = STATUS_RE.search(response)
        result = RecipientResult(
            recipient=delivery.subscriber.email,
            action="failed",
            status=".".join(status.groups()) if status else "",
            reply_code=str(delivery.smtp_code),
            diagnostic=" ".join(response.split())[: parse.MAX_DIAGNOSTIC],
        )
        found = attribution.Attribution(
            delivery=delivery,
            campaign_id=delivery.campaign_id,
            account_id=accounts.get(delivery.campaign_id),
            subscriber=delivery.subscriber,
            relay_id=delivery.relay_id,
            via="smtp",
        )
        events.append(
            _event(result, classify(result), found, source=Source.SMTP, raw=response, at=now)
        )
    if not events:
        return []
    events = BounceEvent.objects.bulk_create(events)
    _apply_all(events)
    return events


def record_smtp_failure(
    delivery: Delivery, reply_code: int, response_text: str
) -> BounceEvent | None:
    """One refused delivery (see record_smtp_failures); None when the reply is not 5xx."""
    delivery.smtp_code, delivery.smtp_response = reply_code, response_text
    events = record_smtp_failures([delivery])
    return events[0] if events else None
