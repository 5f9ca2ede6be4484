"""Every bounce source ends here: store one BounceEvent per failed recipient, then apply rules.

The raw input is stored before any rule acts on it, so a rule that fails leaves an event
with ``applied=False`` instead of a lost bounce. Input nothing understands is quarantined
with a reason. The only exception that leaves these functions is a database error while
storing, which the caller must see (the pipe command then tells the MTA to retry); a value
the database refuses (a DataError) is input to quarantine, not an outage to retry.

A returned message is stored once (ReturnedMessage) and its events point to it; one message
gives at most MAX_RECIPIENTS_PER_MESSAGE events, the rest are counted on the message.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from datetime import datetime

from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.utils import timezone

from bounces import attribution, parse, suppression
from bounces.classify import classify
from bounces.models import (
    BounceClass,
    BounceEvent,
    ProviderEventReceipt,
    QuarantinedMessage,
    ReturnedMessage,
    Source,
)
from bounces.parse import STATUS_RE, RecipientResult
from campaigns.models import Campaign
from lists import addresses
from sending.models import Delivery
from stats import events as stats_events

logger = logging.getLogger(__name__)

# A DSN may list thousands of recipients (a mail loop, an alias exploding): beyond this many
# from one message, the rest are counted on the ReturnedMessage, not recorded one by one.
MAX_RECIPIENTS_PER_MESSAGE = 500

# Postgres text refuses NUL, and a UTF-8 encoder refuses lone surrogates (JSON's "\ud800").
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """The text without the characters a Postgres text column refuses (NUL, lone surrogates)."""
    return UNSTORABLE_RE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text or "")


def quarantine(
    raw: bytes | str,
    *,
    source: str,
    reason: str,
    provider: str = "",
    envelope_recipient: str = "",
    event_id: str = "",
) -> QuarantinedMessage:
    """Keeps input that no rule could act on for an operator; returns the stored row.

    With a provider event id, a replay of input already kept returns the kept row.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    event_id = storable(event_id)[:255]
    if event_id:
        kept = QuarantinedMessage.objects.filter(provider=provider, provider_event_id=event_id)
        if kept.exists():
            return kept.get()
    logger.warning("bounce input quarantined (%s): %s", source, reason)
    row = QuarantinedMessage(
        source=source,
        provider=provider,
        provider_event_id=event_id,
        raw=bytes(raw),
        envelope_recipient=storable(envelope_recipient)[:254],
        reason=storable(reason)[:2000],
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        if not event_id:
            raise
        # The same event arrived twice at once: the other request kept it.
        return QuarantinedMessage.objects.get(provider=provider, provider_event_id=event_id)
    return row


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
    except DataError as exc:
        # The database refused a value of this message: retrying would be refused forever.
        logger.exception("bounce refused by the database")
        return [], f"database refused the message: {exc}"[:500]
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
    _make_storable(parsed)
    envelope_recipient = storable(envelope_recipient or "") or None
    results = parsed.results[:MAX_RECIPIENTS_PER_MESSAGE]
    now = timezone.now()
    only_one = len(parsed.results) == 1
    # One savepoint around every query: a value the database refuses (DataError) leaves the
    # caller's transaction usable for the quarantine row (the poller stores inside its own).
    with transaction.atomic():
        message = ReturnedMessage.objects.create(
            source=source,
            received_at=now,
            raw=raw,
            envelope_recipient=(envelope_recipient or "")[:254],
            recipients_found=len(parsed.results),
            recipients_recorded=len(results),
            note=_cap_note(len(parsed.results)),
        )
        events = []
        for result in results:
            found = attribution.attribute(
                result.recipient,
                envelope_recipient=envelope_recipient,
                verp_token=parsed.verp_token,
                message_id=result.original_message_id or parsed.original_message_id,
                only_recipient=only_one,
            )
            events.append(
                _event(
                    result, classify(result), found, source=source, raw="", at=now, message=message
                )
            )
        return BounceEvent.objects.bulk_create(events)


def _cap_note(found: int) -> str:
    if found <= MAX_RECIPIENTS_PER_MESSAGE:
        return ""
    skipped = found - MAX_RECIPIENTS_PER_MESSAGE
    logger.warning("returned message lists %s recipients; %s not recorded", found, skipped)
    return (
        f"{found} failed recipients reported; the first {MAX_RECIPIENTS_PER_MESSAGE} were "
        f"recorded, {skipped} were not."
    )


def _make_storable(parsed: parse.ParsedBounce) -> None:
    """Strips what the database refuses from every text the parser found, in place."""
    for item in (parsed, *parsed.results):
        for field in dataclasses.fields(item):
            value = getattr(item, field.name)
            if isinstance(value, str):
                setattr(item, field.name, storable(value))


def _event(
    result: RecipientResult,
    bounce_class: str,
    found: attribution.Attribution,
    *,
    source: str,
    raw: str,
    at: datetime,
    **extra: object,
) -> BounceEvent:
    recipient = storable(result.recipient or (found.subscriber.email if found.subscriber else ""))
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
        status_code=storable(result.status)[:16],
        reply_code=storable(result.reply_code)[:8],
        diagnostic=storable(result.diagnostic),
        receiving_domain=_domain(recipient),
        raw=storable(raw),
        **extra,
    )


def _domain(address: str) -> str:
    try:
        return addresses.domain_of(address)[:253]
    except (addresses.InvalidAddress, ValueError, IndexError):
        return address.rpartition("@")[2].lower()[:253]


def _apply_all(events: Iterable[BounceEvent]) -> None:
    events = list(events)
    _log_stats(events)
    for event in events:
        try:
            suppression.apply(event)
        except Exception:
            # The event is stored (applied=False): the input is safe, so the caller must not
            # resend it. The admin's "apply rules" action runs the rules again.
            logger.exception("bounce rules failed for event %s", event.pk)


# Bounce classes as events of the statistics log; the rest (auto-replies, unsubscribe
# requests, which log their own unsubscribe) are not failures to count.
STATS_KINDS = {
    BounceClass.HARD: "bounced",
    BounceClass.SOFT: "bounced",
    BounceClass.SENDER_SIDE: "bounced",
    BounceClass.COMPLAINT: "complained",
}


def _log_stats(events: list[BounceEvent]) -> None:
    """Counts stored bounces and complaints in the statistics log, all in one write."""
    rows = [
        stats_events.Event(
            kind=STATS_KINDS[e.bounce_class],
            occurred_at=e.received_at,
            account_id=e.account_id,
            campaign_id=e.campaign_id,
            subscriber_id=e.subscriber_id,
            delivery_id=e.delivery_id,
            relay_id=e.relay_id,
            recipient_domain=e.receiving_domain,
            details={"bounce_class": e.bounce_class, "source": e.source},
        )  # fmt: skip
        for e in events
        if e.bounce_class in STATS_KINDS
    ]
    if not rows:
        return
    try:
        with transaction.atomic():
            stats_events.record_many(rows)
    except Exception:
        # The bounce is stored and its rules still run: a statistics failure must not make
        # the caller resend the input (which would store the bounce twice).
        logger.exception("could not count %s bounces in the statistics", len(rows))


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
    event with an unknown class is quarantined (once per event id) and also returns None.
    """
    event_id, recipient, message_id = storable(event_id), storable(recipient), storable(message_id)
    if bounce_class not in BounceClass.values:
        quarantine(
            payload,
            source=Source.WEBHOOK,
            provider=provider,
            reason=f"unknown bounce class {bounce_class!r}",
            event_id=event_id,
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


def record_provider_delivery(
    *,
    provider: str,
    event_id: str,
    recipient: str,
    message_id: str = "",
    occurred_at: datetime | None = None,
) -> stats_events.Event | None:
    """Counts one ESP delivery report in the statistics log, as a "delivered" event.

    Attributed as a bounce is (our Message-ID, else the address). Returns the logged event;
    None for a replay of (provider, event_id), whose receipt is written with the log row, and
    for mail nothing here was sent to (another sender on the same ESP account). Raises what
    the log raises: the caller quarantines the event, and nothing of it is counted.
    """
    event_id, recipient, message_id = storable(event_id), storable(recipient), storable(message_id)
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    receipts = ProviderEventReceipt.objects.filter(provider=provider, provider_event_id=event_id)
    if event_id and receipts.exists():
        return None
    found = attribution.attribute(recipient, message_id=message_id)
    if found.account_id is None:
        return None
    row = _stats_event(
        stats_events.Kind.DELIVERED,
        found,
        occurred_at=occurred_at or timezone.now(),
        recipient_domain=_domain(recipient),
        details={"provider": provider},
    )
    with transaction.atomic():
        if event_id:
            try:
                with transaction.atomic():
                    ProviderEventReceipt.objects.create(
                        provider=provider[:32], provider_event_id=event_id[:255]
                    )
            except IntegrityError:  # the same event arrived twice at once
                return None
        stats_events.record_many([row])
    return row


def _stats_event(
    kind: str,
    found: attribution.Attribution,
    *,
    occurred_at: datetime,
    recipient_domain: str,
    details: dict,
) -> stats_events.Event:
    return stats_events.Event(
        kind=kind,
        occurred_at=occurred_at,
        account_id=found.account_id,
        campaign_id=found.campaign_id,
        subscriber_id=found.subscriber.id if found.subscriber else None,
        delivery_id=found.delivery.id if found.delivery else None,
        relay_id=found.relay_id,
        recipient_domain=recipient_domain,
        details=details,
    )


def record_smtp_failures(deliveries: Iterable[Delivery]) -> list[BounceEvent]:
    """Stores a BounceEvent for each failed delivery our relay refused with 5xx, or
    deferred with 4xx until the retry deadline passed, then applies rules.

    The reply text decides the class, as for a returned message: a 5.7.x policy refusal is
    the sender's problem, not a dead address. Expects ``subscriber`` loaded; a couple of
    queries store the whole chunk, then each event's rules run.
    """
    refused = [d for d in deliveries if d.smtp_code and 400 <= d.smtp_code < 600]
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
    """One refused delivery (see record_smtp_failures); None when the reply is not 4xx/5xx."""
    delivery.smtp_code, delivery.smtp_response = reply_code, response_text
    events = record_smtp_failures([delivery])
    return events[0] if events else None
