"""A worker's share of a campaign: claim a batch, take its recipients, merge, send,
record. Nothing that is the same for every recipient is computed per recipient.

Order of writes for each group of messages (a "chunk"): the deliveries are marked
SENDING in one UPDATE before the first byte goes to SMTP, and their outcomes are
written in bulk after. A worker killed in between leaves SENDING rows, which the
dispatcher turns into UNKNOWN: never sent twice.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from bounces import intake
from campaigns import audience, merge
from campaigns.models import Campaign
from lists.models import MailingList, Subscription
from sending import domains, message, smtp, verp
from sending.models import Delivery, Relay, SendBatch, SendingDomain
from sending.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

DStatus = Delivery.Status
# What sending reads of a delivery and its subscriber: half the cost of whole rows
# (the subscriber's consent record and the delivery's old reply stay in the database).
DELIVERY_FIELDS = (
    "id", "campaign_id", "subscriber_id", "batch_id", "status", "attempts", "next_attempt_at",
    "subscriber__id", "subscriber__email", "subscriber__name", "subscriber__fields",
)  # fmt: skip
RETRY_DELAYS = [timedelta(minutes=m) for m in (5, 15, 60, 180, 360)]


@dataclass
class Prepared:
    """Per campaign and process: what every message of the campaign shares."""

    campaign: Campaign
    frozen: merge.FrozenCampaign
    factory: message.MessageFactory
    lists: dict[int, tuple[str, str]]  # list id -> (name, List-Id header)
    bounce_domain: str


_prepared: dict[tuple[int, object], Prepared] = {}


def _prepare(campaign: Campaign) -> Prepared:
    key = (campaign.pk, campaign.frozen_at)
    if key in _prepared:
        return _prepared[key]
    frozen = merge.load_frozen(campaign)
    sender_domain = campaign.from_email.rpartition("@")[2].lower()
    sending_domain = (
        SendingDomain.objects.filter(domain=sender_domain, verified_at__isnull=False)
        .filter(Q(account=campaign.account_id) | Q(account__isnull=True))
        .order_by(F("account").asc(nulls_last=True))
        .first()
    )
    bounce_domain = settings.BOUNCE_DOMAIN or sender_domain
    factory = message.MessageFactory(
        campaign_id=campaign.pk, campaign_uuid=campaign.uuid.hex, account_id=campaign.account_id,
        from_name=campaign.from_name, from_email=campaign.from_email, reply_to=campaign.reply_to,
        attachments=frozen.attachments,
        signing_keys=domains.signing_keys(sending_domain) if sending_domain else [],
        unsubscribe_mailto=f"unsubscribe@{bounce_domain}",
    )  # fmt: skip
    lists = {
        row.id: (row.name, message.list_id_header(row.name, row.uuid.hex))
        for row in MailingList.objects.filter(campaigns=campaign)
    }
    prepared = Prepared(campaign, frozen, factory, lists, bounce_domain)
    _prepared.clear()  # one campaign at a time per process is the common case
    _prepared[key] = prepared
    return prepared


def claim(batch_id: int, node: str) -> SendBatch | None:
    """Takes the batch if it is still queued; None if another worker has it or it is done."""
    lease = timezone.now() + timedelta(seconds=settings.SEND_BATCH_LEASE_SECONDS)
    claimed = SendBatch.objects.filter(id=batch_id, status=SendBatch.Status.QUEUED).update(
        status=SendBatch.Status.SENDING, node=node, lease_until=lease, claims=F("claims") + 1
    )
    return SendBatch.objects.get(id=batch_id) if claimed == 1 else None


def _park(batch: SendBatch) -> None:
    """Gives the batch back (pause): the dispatcher re-queues it when the campaign sends."""
    SendBatch.objects.filter(id=batch.id, status=SendBatch.Status.SENDING).update(
        status=SendBatch.Status.QUEUED, enqueued_at=None, node="", lease_until=None
    )


def _finish(batch: SendBatch) -> None:
    SendBatch.objects.filter(id=batch.id).update(
        status=SendBatch.Status.DONE, finished_at=timezone.now(), lease_until=None
    )


def _sendable_ids(campaign: Campaign, low: int, high: int) -> list[int]:
    return list(
        audience.recipients(campaign, (low, high)).order_by("id").values_list("id", flat=True)
    )


def take_recipients(batch: SendBatch, campaign: Campaign) -> list[Delivery]:
    """Writes the batch's deliveries and returns those to send now.

    Recipients are whoever is in the audience now within the batch's id range: an
    unsubscribe, bounce or blocklist entry since planning takes them out.
    """
    ids = _sendable_ids(campaign, batch.first_subscriber_id, batch.last_subscriber_id)
    now = timezone.now()
    _insert_deliveries(campaign.pk, batch.pk, ids, now)
    sendable = set(ids)
    in_range = Delivery.objects.filter(
        campaign=campaign,
        subscriber_id__gte=batch.first_subscriber_id,
        subscriber_id__lte=batch.last_subscriber_id,
    )
    ready = Q(status=DStatus.QUEUED) | Q(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=DStatus.DEFERRED
    )
    # One range scan instead of an IN list of every id: the filter by the audience
    # happens here, on ids already in memory.
    rows = list(
        in_range.filter(ready)
        .select_related("subscriber")
        .only(*DELIVERY_FIELDS)
        .order_by("subscriber_id")
    )
    # Queued earlier but no longer in the audience: never sent, shown as skipped.
    gone = [d.id for d in rows if d.subscriber_id not in sendable and d.status == DStatus.QUEUED]
    if gone:
        Delivery.objects.filter(id__in=gone, status=DStatus.QUEUED).update(status=DStatus.SKIPPED)
    return [d for d in rows if d.subscriber_id in sendable]


def _insert_deliveries(campaign_id: int, batch_id: int, subscriber_ids: list[int], now) -> None:  # noqa: ANN001
    """A QUEUED row per subscriber, keeping any row a previous attempt wrote."""
    if connection.vendor == "postgresql":
        # One statement with the ids as an array: several times cheaper than a
        # multi-row INSERT built by the ORM, and the unique constraint still decides.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Delivery._meta.db_table} "  # noqa: S608 (table name, not input)
                "(campaign_id, subscriber_id, batch_id, status, attempts, smtp_response, "
                "created_at) SELECT %s, unnest(%s::bigint[]), %s, %s, 0, '', %s "
                "ON CONFLICT (campaign_id, subscriber_id) DO NOTHING",
                [campaign_id, subscriber_ids, batch_id, DStatus.QUEUED, now],
            )
        return
    Delivery.objects.bulk_create(
        [
            Delivery(campaign_id=campaign_id, subscriber_id=i, batch_id=batch_id, created_at=now)
            for i in subscriber_ids
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )


def _lists_of(campaign: Campaign, subscriber_ids: list[int], list_ids: list[int]) -> dict[int, int]:
    """For each subscriber, the (lowest-id) target list they are confirmed on."""
    rows = (
        Subscription.objects.sendable()
        .filter(subscriber_id__in=subscriber_ids, mailing_list_id__in=list_ids)
        .order_by("-mailing_list_id")
        .values_list("subscriber_id", "mailing_list_id")
    )
    return dict(rows)


@cache
def _redis() -> redis.Redis | None:
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def _bucket(relay: Relay) -> TokenBucket | None:
    client = _redis()
    return TokenBucket(client, f"relay:{relay.id}", relay.rate_per_second) if client else None


def _pick_relay(campaign: Campaign, avoid: set[int]) -> Relay | None:
    relays = list(Relay.objects.usable().for_account(campaign.account).exclude(id__in=avoid))
    if not relays:
        return None
    # Weighted choice, deterministic per campaign so one process keeps its connection.
    total = sum(r.weight for r in relays) or 1
    point = (campaign.pk * 7919 + len(avoid)) % total
    for relay in relays:
        point -= relay.weight
        if point < 0:
            return relay
    return relays[-1]


@dataclass
class Totals:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    skipped: int = 0


def _campaign_status(campaign_id: int) -> str:
    return Campaign.objects.filter(id=campaign_id).values_list("status", flat=True).first() or ""


def _still_sendable(campaign: Campaign, chunk: list[Delivery]) -> list[Delivery]:
    ids = {d.subscriber_id for d in chunk}
    live = set(_sendable_ids(campaign, min(ids), max(ids))) & ids
    gone = [d.id for d in chunk if d.subscriber_id not in live]
    if gone:
        Delivery.objects.filter(id__in=gone).update(status=DStatus.SKIPPED)
    return [d for d in chunk if d.subscriber_id in live]


def _record(results: list[tuple[Delivery, smtp.Outcome, Relay]]) -> Totals:
    totals = Totals()
    now = timezone.now()
    sent_by_relay: dict[int, list[int]] = {}
    others = []
    for delivery, outcome, relay in results:
        if outcome.status == smtp.SENT:
            sent_by_relay.setdefault(relay.id, []).append(delivery.id)
            continue
        delivery.relay = relay
        delivery.attempts += 1
        delivery.smtp_code = outcome.code
        delivery.smtp_response = outcome.response[:2000]
        if outcome.status == smtp.DEFERRED:
            delay = RETRY_DELAYS[min(delivery.attempts - 1, len(RETRY_DELAYS) - 1)]
            delivery.status, delivery.next_attempt_at = DStatus.DEFERRED, now + delay
            totals.deferred += 1
        elif outcome.status == smtp.UNKNOWN:
            delivery.status = DStatus.UNKNOWN
            totals.unknown += 1
        else:
            delivery.status = DStatus.FAILED
            totals.failed += 1
        others.append(delivery)
    for relay_id, ids in sent_by_relay.items():
        Delivery.objects.filter(id__in=ids).update(
            status=DStatus.SENT, sent_at=now, relay_id=relay_id, attempts=F("attempts") + 1
        )
        totals.sent += len(ids)
    if others:
        Delivery.objects.bulk_update(
            others, ["status", "relay", "attempts", "smtp_code", "smtp_response", "next_attempt_at"]
        )
        # A 5xx at our relay is a bounce like any returned message: same rules, same record.
        intake.record_smtp_failures([d for d in others if d.status == DStatus.FAILED])
    return totals


def _recipient(prepared: Prepared, delivery: Delivery, list_id: int) -> message.Recipient:
    sub = delivery.subscriber
    list_name, list_header = prepared.lists[list_id]
    urls = prepared.frozen.urls
    unsubscribe_url = urls.unsubscribe_url(sub.id, list_id)
    subject, html, text = merge.merge(
        prepared.frozen,
        {
            "subscriber": {
                "id": sub.id,
                "name": sub.name,
                "email": sub.email,
                "fields": sub.fields,
            },
            "list": {"id": list_id, "name": list_name},
            "recipient_id": delivery.id,
            "unsubscribe_url": unsubscribe_url,
        },
    )
    return message.Recipient(
        delivery_id=delivery.id, email=sub.email, name=sub.name, subject=subject, html=html,
        text=text, unsubscribe_url=unsubscribe_url, list_id_header=list_header,
    )  # fmt: skip


def run_batch(batch_id: int, node: str) -> Totals | None:
    """Sends one batch; returns what happened, or None if the batch was not ours to send."""
    batch = claim(batch_id, node)
    if batch is None:
        return None
    campaign = Campaign.objects.select_related("account").get(id=batch.campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        _park(batch) if campaign.status == Campaign.Status.PAUSED else _finish(batch)
        return Totals()
    prepared = _prepare(campaign)
    deliveries = take_recipients(batch, campaign)
    lists_of = _lists_of(campaign, [d.subscriber_id for d in deliveries], list(prepared.lists))
    totals = Totals()
    chunk_size = settings.SEND_CHUNK_SIZE
    failed_relays: set[int] = set()
    for start in range(0, len(deliveries), chunk_size):
        status = _campaign_status(campaign.id)
        if status != Campaign.Status.SENDING:
            # Pause or cancel: stop between recipients; a paused batch is picked up later.
            (_park if status == Campaign.Status.PAUSED else _finish)(batch)
            return totals
        SendBatch.objects.filter(id=batch.id).update(
            lease_until=timezone.now() + timedelta(seconds=settings.SEND_BATCH_LEASE_SECONDS)
        )
        chunk = _still_sendable(campaign, deliveries[start : start + chunk_size])
        if not chunk:
            continue
        done = _record(_send_chunk(prepared, chunk, lists_of, failed_relays))
        for name in ("sent", "failed", "deferred", "unknown"):
            setattr(totals, name, getattr(totals, name) + getattr(done, name))
    _finish(batch)
    return totals


def _wait_for_tokens(relay: Relay, count: int) -> None:
    bucket = _bucket(relay)
    if bucket is None:
        return
    while count > 0:
        grant = bucket.take(count)
        count -= grant.granted
        if count > 0:
            time.sleep(max(grant.wait_seconds, 0.005))


def _send_chunk(
    prepared: Prepared,
    chunk: list[Delivery],
    lists_of: dict[int, int],
    failed_relays: set[int],
) -> list[tuple[Delivery, smtp.Outcome, Relay | None]]:
    """Marks the chunk SENDING, then hands each message to SMTP. A relay whose
    connection fails is left for the rest of the batch and the message moves on to
    the next relay; with none left, the message is deferred (retried later)."""
    from sending import relays as relay_health

    campaign = prepared.campaign
    with transaction.atomic():
        Delivery.objects.filter(id__in=[d.id for d in chunk]).update(status=DStatus.SENDING)
    relay = _pick_relay(campaign, failed_relays)
    if relay is not None:
        _wait_for_tokens(relay, len(chunk))

    def build(delivery: Delivery) -> bytes:
        list_id = lists_of.get(delivery.subscriber_id) or next(iter(prepared.lists))
        return prepared.factory.build(_recipient(prepared, delivery, list_id))

    def items() -> Iterator[smtp.Item]:
        # Each message is built when the connection asks for it (see send_many): only
        # a few exist in memory at once.
        for delivery in chunk:
            sender = verp.address(delivery.id, prepared.bounce_domain)
            yield delivery, sender, delivery.subscriber.email, functools.partial(build, delivery)

    outcomes: dict[int, tuple[Delivery, smtp.Outcome, Relay | None]] = {}
    todo: Iterator[smtp.Item] = items()
    while relay is not None:
        try:
            for delivery, outcome in smtp.pool.get(relay).send_many(todo):
                outcomes[delivery.id] = (delivery, outcome, relay)
            break
        except (smtp.ConnectionLost, OSError) as exc:
            smtp.pool.discard(relay)
            lost = exc.unknown if isinstance(exc, smtp.ConnectionLost) else []
            unsent = exc.unsent if isinstance(exc, smtp.ConnectionLost) else []
            for delivery, outcome in lost:
                outcomes[delivery.id] = (delivery, outcome, relay)
            todo = itertools.chain(unsent, todo)
            if lost:
                # The relay took the message and then the connection went: it is not
                # the relay that failed, so reconnect to it.
                continue
            relay_health.record_failure(relay, str(exc))
            failed_relays.add(relay.id)
            logger.warning("relay %s failed: %s; moving on", relay.name, exc)
            relay = _pick_relay(campaign, failed_relays)
    nobody = smtp.Outcome(smtp.DEFERRED, None, "no relay could take the message")
    results = [outcomes.get(d.id, (d, nobody, None)) for d in chunk]
    for used in {
        r.id: r for _, o, r in results if r is not None and o.status == smtp.SENT
    }.values():
        relay_health.record_success(used)
    return results
