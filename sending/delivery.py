"""A worker's share of a campaign: claim a batch, take its recipients, merge, send,
record. Nothing that is the same for every recipient is computed per recipient.

Order of writes for each group of messages (a "chunk"): the deliveries are marked
SENDING in one UPDATE before the first byte goes to SMTP, and their outcomes are
written in bulk after. A worker killed in between leaves SENDING rows, which the
dispatcher turns into UNKNOWN: never sent twice.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

import redis
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from bounces import intake
from campaigns import audience, freezing, merge
from campaigns.models import Campaign
from lists.models import MailingList, Subscription
from sending import domains, message, nodes, pacing, slots, smtp, verp
from sending import relays as relay_health
from sending.models import Delivery, RecipientDomainLimit, Relay, SendBatch, SendingDomain
from sending.ratelimit import DomainLimits, TokenBucket
from stats.events import Event, domain_of, record_many

logger = logging.getLogger(__name__)

DStatus = Delivery.Status
# What sending reads of a delivery and its subscriber: half the cost of whole rows
# (the subscriber's consent record and the delivery's old reply stay in the database).
DELIVERY_FIELDS = (
    "id", "campaign_id", "subscriber_id", "batch_id", "relay_id", "status", "attempts",
    "next_attempt_at", "subscriber__id", "subscriber__email", "subscriber__domain",
    "subscriber__name", "subscriber__fields",
)  # fmt: skip
RETRY_DELAYS = [timedelta(minutes=m) for m in (5, 15, 60, 180, 360)]
# Per recipient, what a list whose owner turned tracking off takes out of the message.
OPENS_OFF, CLICKS_OFF = 1, 2
# While every usable relay has all its connections open, look again this often.
SLOT_WAIT_SECONDS = 0.2


@dataclass
class Prepared:
    """Per campaign and process: what every message of the campaign shares."""

    campaign: Campaign
    frozen: merge.FrozenCampaign
    factory: message.MessageFactory
    lists: dict[int, tuple[str, str]]  # list id -> (name, List-Id header)
    bounce_domain: str
    # OPENS_OFF | CLICKS_OFF -> the frozen campaign without that tracking, made once.
    variants: dict[int, merge.FrozenCampaign] = field(default_factory=dict)

    def frozen_for(self, untracked: int) -> merge.FrozenCampaign:
        """The frozen campaign for a recipient with these kinds of tracking off."""
        if not untracked:
            return self.frozen
        variant = self.variants.get(untracked)
        if variant is None:
            variant = self.variants[untracked] = freezing.untracked_variant(
                self.campaign, self.frozen,
                opens=bool(untracked & OPENS_OFF), clicks=bool(untracked & CLICKS_OFF),
            )  # fmt: skip
        return variant


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
    # A verified domain may have no DKIM key (a relay that signs itself): nothing to sign.
    signs = sending_domain is not None and bool(sending_domain.private_key_encrypted)
    factory = message.MessageFactory(
        campaign_id=campaign.pk, campaign_uuid=campaign.uuid.hex, account_id=campaign.account_id,
        from_name=campaign.from_name, from_email=campaign.from_email, reply_to=campaign.reply_to,
        attachments=frozen.attachments,
        signing_keys=domains.signing_keys(sending_domain) if signs else [],
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

    Recipients of an audience batch are whoever is in the audience now within its id
    range: an unsubscribe, bounce or blocklist entry since planning takes them out. A
    retry batch takes only the deferred deliveries handed to it, never the rest of its
    range (recipients of batches that gradual sending has not released yet).
    """
    low, high = batch.first_subscriber_id, batch.last_subscriber_id
    if batch.kind == SendBatch.Kind.RETRY:
        rows = _read(Delivery.objects.filter(batch=batch, status=DStatus.DEFERRED))
        wanted = [d.subscriber_id for d in rows]
        live = audience.recipients(campaign, (low, high)).filter(id__in=wanted)
        sendable = set(live.values_list("id", flat=True))
    else:
        ids = _sendable_ids(campaign, low, high)
        now = timezone.now()
        _insert_deliveries(campaign.pk, batch.pk, ids, now)
        sendable = set(ids)
        ready = Q(status=DStatus.QUEUED) | Q(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=DStatus.DEFERRED
        )
        # One range scan instead of an IN list of every id: the filter by the audience
        # happens here, on ids already in memory.
        in_range = Delivery.objects.filter(
            ready, campaign=campaign, subscriber_id__gte=low, subscriber_id__lte=high
        )
        rows = _read(in_range)
    # Waiting but no longer in the audience: never sent, shown as skipped.
    gone = [d.id for d in rows if d.subscriber_id not in sendable]
    if gone:
        waiting = (DStatus.QUEUED, DStatus.DEFERRED)
        Delivery.objects.filter(id__in=gone, status__in=waiting).update(
            status=DStatus.SKIPPED, next_attempt_at=None
        )
    return [d for d in rows if d.subscriber_id in sendable]


def _read(deliveries: models.QuerySet[Delivery]) -> list[Delivery]:
    return list(
        deliveries.select_related("subscriber").only(*DELIVERY_FIELDS).order_by("subscriber_id")
    )


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


def _untracked_lists(campaign: Campaign) -> dict[int, int]:
    """Target lists whose owner turned off a kind of tracking the campaign uses:
    list id -> OPENS_OFF | CLICKS_OFF. Read per batch, so a switch reaches the next one."""
    found = {}
    rows = MailingList.objects.filter(campaigns=campaign).values_list(
        "id", "track_opens", "track_clicks"
    )
    for list_id, opens, clicks in rows:
        off = (OPENS_OFF if campaign.track_opens and not opens else 0) | (
            CLICKS_OFF if campaign.track_clicks and not clicks else 0
        )
        if off:
            found[list_id] = off
    return found


def recipient_lists(
    subscriber_ids: list[int], list_ids: list[int], untracked_lists: dict[int, int] | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    """For each subscriber, the (lowest-id) target list they are confirmed on, and the
    kinds of tracking that are off for them: off on any of their target lists is off."""
    rows = (
        Subscription.objects.sendable()
        .filter(subscriber_id__in=subscriber_ids, mailing_list_id__in=list_ids)
        .order_by("-mailing_list_id")
        .values_list("subscriber_id", "mailing_list_id")
    )
    if not untracked_lists:
        return dict(rows), {}
    lists_of: dict[int, int] = {}
    untracked: dict[int, int] = {}
    for subscriber_id, list_id in rows:
        lists_of[subscriber_id] = list_id
        off = untracked_lists.get(list_id)
        if off:
            untracked[subscriber_id] = untracked.get(subscriber_id, 0) | off
    return lists_of, untracked


@cache
def _redis() -> redis.Redis | None:
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def _domain_limits() -> DomainLimits | None:
    """The operators' per-recipient-domain limits (read per batch: an edit in the admin
    reaches the next batch); None without Redis or without limits."""
    client = _redis()
    if client is None:
        return None
    per_minute = dict(RecipientDomainLimit.objects.active().values_list("domain", "per_minute"))
    return DomainLimits(client, per_minute) if per_minute else None


# The golden ratio's fraction: n * GOLDEN mod 1 spreads consecutive batch ids evenly
# over [0, 1), so a campaign's batches split between relays by weight almost exactly.
GOLDEN = 0.6180339887498949


def _pick_relay(campaign: Campaign, avoid: set[int], key: int) -> Relay | None:
    """A usable relay of the account, none of ``avoid``, drawn by weight for ``key``
    (the batch id: a batch sent again goes the same way, and a campaign's batches share
    the relays by weight). A relay of weight 0 only when no other is usable."""
    relays = sorted(
        Relay.objects.usable().for_account(campaign.account).exclude(id__in=avoid),
        key=lambda r: r.id,
    )
    total = sum(r.weight for r in relays)
    if not total:
        return relays[0] if relays else None
    point = (key * GOLDEN) % 1.0 * total
    weighted = [r for r in relays if r.weight]
    for relay in weighted:
        point -= relay.weight
        if point < 0:
            return relay
    return weighted[-1]


@dataclass
class Totals:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    skipped: int = 0


@dataclass
class ChunkResult:
    """Outcomes of the messages handed to SMTP, the recipients held back by their
    domain's limit (with the seconds until they are due), and those not handed out
    because the campaign was paused or cancelled meanwhile."""

    results: list[tuple[Delivery, smtp.Outcome, Relay | None]] = field(default_factory=list)
    held: list[tuple[Delivery, float]] = field(default_factory=list)
    unsent: list[Delivery] = field(default_factory=list)


def _still_sendable(campaign: Campaign, chunk: list[Delivery]) -> list[Delivery]:
    ids = {d.subscriber_id for d in chunk}
    live = set(_sendable_ids(campaign, min(ids), max(ids))) & ids
    gone = [d.id for d in chunk if d.subscriber_id not in live]
    if gone:
        Delivery.objects.filter(id__in=gone).update(status=DStatus.SKIPPED)
    return [d for d in chunk if d.subscriber_id in live]


def _record(chunk: ChunkResult, prepared: Prepared, lists_of: dict) -> Totals:
    results = chunk.results
    totals = Totals()
    now = timezone.now()
    _give_back(chunk.unsent)
    _hold(chunk.held, now)
    totals.deferred += len(chunk.held)
    sent_by_relay: dict[int, list[int]] = {}
    others = []
    unanswered = []  # deferred without a reply: the row keeps the relay's last reply
    for delivery, outcome, relay in results:
        if outcome.status == smtp.SENT:
            sent_by_relay.setdefault(relay.id, []).append(delivery.id)
            continue
        delivery.relay = relay
        delivery.attempts += 1
        if outcome.status == smtp.DEFERRED and outcome.code is None and delivery.attempts > 1:
            delivery.status = DStatus.DEFERRED
            delivery.next_attempt_at = now + _retry_delay(delivery.attempts)
            totals.deferred += 1
            unanswered.append(delivery)
            continue
        delivery.smtp_code = outcome.code
        delivery.smtp_response = outcome.response[:2000]
        if outcome.status == smtp.DEFERRED:
            delivery.status = DStatus.DEFERRED
            delivery.next_attempt_at = now + _retry_delay(delivery.attempts)
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
    if unanswered:
        Delivery.objects.bulk_update(unanswered, ["status", "relay", "attempts", "next_attempt_at"])
    _log_outcomes(results, prepared, lists_of, now)
    return totals


def _retry_delay(attempts: int) -> timedelta:
    return RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]


def _give_back(unsent: list[Delivery]) -> None:
    """Recipients a pause or cancel kept from SMTP go back to what they were (queued, or
    deferred and due), so a resumed batch sends them: marked SENDING they would be lost."""
    for status in (DStatus.QUEUED, DStatus.DEFERRED):
        ids = [d.id for d in unsent if d.status == status]
        if ids:
            Delivery.objects.filter(id__in=ids, status=DStatus.SENDING).update(status=status)


def _hold(held: list[tuple[Delivery, float]], now: object) -> None:
    """Recipients over their domain's limit wait a little: deferred without counting an
    attempt, due again when the domain has room for them. One a relay answered before
    keeps that reply: it is the reason given if the retry deadline passes."""
    fresh, answered = [], []
    for delivery, delay in held:
        delivery.status = DStatus.DEFERRED
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        if delivery.attempts:
            answered.append(delivery)
            continue
        delivery.smtp_code = None
        delivery.smtp_response = f"waiting for the per-domain limit of {delivery.subscriber.domain}"
        fresh.append(delivery)
    if fresh:
        Delivery.objects.bulk_update(
            fresh, ["status", "smtp_code", "smtp_response", "next_attempt_at"]
        )
    if answered:
        Delivery.objects.bulk_update(answered, ["status", "next_attempt_at"])


_LOGGED = {smtp.SENT: "sent", smtp.FAILED: "failed", smtp.UNKNOWN: "unknown"}


def _log_outcomes(
    results: list[tuple[Delivery, smtp.Outcome, Relay | None]],
    prepared: Prepared,
    lists_of: dict,
    now: object,
) -> None:
    """The chunk's final outcomes in the event log and campaign counters: one COPY and a
    couple of upserts for the whole chunk (deferred messages are not final yet)."""
    account_id, campaign_id = prepared.campaign.account_id, prepared.campaign.pk
    first_list = next(iter(prepared.lists), None)
    rows = [
        Event(
            kind=_LOGGED[outcome.status],
            occurred_at=now,
            account_id=account_id,
            campaign_id=campaign_id,
            mailing_list_id=lists_of.get(d.subscriber_id, first_list),
            subscriber_id=d.subscriber_id,
            delivery_id=d.id,
            relay_id=relay.id if relay else None,
            recipient_domain=domain_of(d.subscriber.email),
        )
        for d, outcome, relay in results
        if outcome.status in _LOGGED
    ]
    record_many(rows)


def _recipient(
    prepared: Prepared, delivery: Delivery, list_id: int, frozen: merge.FrozenCampaign
) -> message.Recipient:
    sub = delivery.subscriber
    list_name, list_header = prepared.lists[list_id]
    urls = frozen.urls
    unsubscribe_url = urls.unsubscribe_url(sub.id, list_id)
    subject, html, text = merge.merge(
        frozen,
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
    nodes.activity.doing(f"batch {batch.id} of campaign {campaign.pk} “{campaign.name}”")
    try:
        return _run(batch, campaign)
    finally:
        # Connections live for a batch: between batches this process holds no slot.
        smtp.pool.close_all()
        nodes.activity.doing("")


def _run(batch: SendBatch, campaign: Campaign) -> Totals:
    prepared = _prepare(campaign)
    deliveries = take_recipients(batch, campaign)
    lists_of, untracked = recipient_lists(
        [d.subscriber_id for d in deliveries], list(prepared.lists), _untracked_lists(campaign)
    )
    control = pacing.Control(batch.id, campaign.id)
    limits = _domain_limits()
    totals = Totals()
    chunk_size = settings.SEND_CHUNK_SIZE
    failed_relays: set[int] = set()
    for start in range(0, len(deliveries), chunk_size):
        if not control.go_on():
            break
        chunk = _still_sendable(campaign, deliveries[start : start + chunk_size])
        if not chunk:
            continue
        sent = _send_chunk(prepared, chunk, (lists_of, untracked), failed_relays, control, limits)
        done = _record(sent, prepared, lists_of)
        for name in ("sent", "failed", "deferred", "unknown"):
            setattr(totals, name, getattr(totals, name) + getattr(done, name))
    if control.stopped:
        # Pause or cancel, seen between recipients: a paused batch is picked up later.
        (_park if control.stopped == Campaign.Status.PAUSED else _finish)(batch)
        return totals
    _finish(batch)
    return totals


def _bucket(relay: Relay) -> TokenBucket | None:
    client = _redis()
    return TokenBucket(client, f"relay:{relay.id}", relay.rate_per_second) if client else None


def claim_deliveries(chunk: list[Delivery], batch_id: int | None = None) -> list[Delivery]:
    """Marks the chunk SENDING (and the batch's, with ``batch_id``); returns the
    deliveries this batch got. A row another batch took first is left to it: batches
    can overlap (an audience batch sent again after its lease ran out reads the due
    deferred rows of its range, which a retry batch may hold too), and the conditional
    update decides, row by row. The row then names the batch that holds it, so if that
    batch's worker dies, its re-plan is what turns the row UNKNOWN."""
    ids = [d.id for d in chunk]
    sets, params = "status = %s", [DStatus.SENDING]
    if batch_id is not None:
        sets, params = "status = %s, batch_id = %s", [DStatus.SENDING, batch_id]
    sql = f"UPDATE {Delivery._meta.db_table} SET {sets} "  # noqa: S608 (table, column names)
    if connection.vendor == "postgresql":
        sql += "WHERE id = ANY(%s) AND status IN (%s, %s) RETURNING id"
        params += [ids, DStatus.QUEUED, DStatus.DEFERRED]
    else:
        sql += f"WHERE id IN ({', '.join(['%s'] * len(ids))}) AND status IN (%s, %s) RETURNING id"
        params += [*ids, DStatus.QUEUED, DStatus.DEFERRED]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        claimed = {row[0] for row in cursor.fetchall()}
    return [d for d in chunk if d.id in claimed]


def _relay_to_avoid(delivery: Delivery) -> int | None:
    # A retry goes through another relay than the one that deferred it, if there is one.
    return delivery.relay_id if delivery.status == DStatus.DEFERRED else None


def _send_chunk(
    prepared: Prepared,
    chunk: list[Delivery],
    recipients_lists: tuple[dict[int, int], dict[int, int]],
    failed_relays: set[int],
    control: pacing.Control,
    limits: DomainLimits | None,
) -> ChunkResult:
    """Marks the chunk SENDING, then hands each message to SMTP (see :func:`_send_via`).
    ``recipients_lists``: each recipient's list and the tracking that is off for them
    (:func:`recipient_lists`). With no relay left, a message is deferred (retried later)."""
    campaign = prepared.campaign
    chunk = claim_deliveries(chunk, control.batch_id)
    lists_of, untracked = recipients_lists

    def build(delivery: Delivery) -> bytes:
        list_id = lists_of.get(delivery.subscriber_id) or next(iter(prepared.lists))
        frozen = prepared.frozen_for(untracked.get(delivery.subscriber_id, 0))
        return prepared.factory.build(_recipient(prepared, delivery, list_id, frozen))

    def item(delivery: Delivery) -> smtp.Item:
        # The message is built when the connection asks for it (see send_many): only a
        # few exist in memory at once.
        sender = verp.address(delivery.id, prepared.bounce_domain)
        return delivery, sender, delivery.subscriber.email, functools.partial(build, delivery)

    groups: dict[int | None, list[Delivery]] = {}
    for delivery in chunk:
        groups.setdefault(_relay_to_avoid(delivery), []).append(delivery)
    outcomes: dict[int, tuple[Delivery, smtp.Outcome, Relay | None]] = {}
    result = ChunkResult()
    key = control.batch_id
    for avoid, group in groups.items():
        if control.stopped:
            result.unsent += group
            continue
        relay = _pick_relay(campaign, failed_relays | {avoid}, key) if avoid else None
        relay = relay or _pick_relay(campaign, failed_relays, key)
        if relay is None:
            continue
        feed = pacing.Feed(control, relay, _bucket(relay), limits, item, deque(group))
        _send_via(campaign, feed, failed_relays, outcomes)
        result.held += feed.held
        if control.stopped:
            result.unsent += feed.unsent()
    kept = {d.id for d, _ in result.held} | {d.id for d in result.unsent}
    nobody = smtp.Outcome(smtp.DEFERRED, None, "no relay could take the message")
    result.results = [outcomes.get(d.id, (d, nobody, None)) for d in chunk if d.id not in kept]
    for used in {
        r.id: r for _, o, r in result.results if r is not None and o.status == smtp.SENT
    }.values():
        if used.id not in failed_relays:
            relay_health.record_success(used)
    return result


def _send_via(
    campaign: Campaign,
    feed: pacing.Feed,
    failed_relays: set[int],
    outcomes: dict[int, tuple[Delivery, smtp.Outcome, Relay | None]],
) -> None:
    """Sends the feed's recipients through its relay. A relay whose connection fails, or
    that answers 4xx over and over, is left for the rest of the batch and cools down; the
    rest moves to the next relay. A relay with all its connections open (in any process)
    is not failing: the feed goes to another relay with room, or waits for one.
    Returns when the feed is empty, paused or relay-less."""
    relay: Relay | None = feed.relay
    full: set[int] = set()
    while relay is not None:
        try:
            connection = smtp.pool.get(relay)
            for delivery, outcome in connection.send_many(feed.items(connection)):
                outcomes[delivery.id] = (delivery, outcome, relay)
                feed.answered(outcome)
                if outcome.status == smtp.SENT:
                    nodes.activity.sent()  # the node's rate, shown by its heartbeat
        except slots.NoSlot:
            full.add(relay.id)
            relay = _relay_with_room(campaign, feed, failed_relays, full)
            continue
        except (smtp.ConnectionLost, OSError) as exc:
            smtp.pool.discard(relay)
            lost = exc.unknown if isinstance(exc, smtp.ConnectionLost) else []
            for delivery, outcome in lost:
                outcomes[delivery.id] = (delivery, outcome, relay)
            feed.put_back(exc.unsent if isinstance(exc, smtp.ConnectionLost) else [])
            if lost:
                # The relay took the message and then the connection went: it is not
                # the relay that failed, so reconnect to it.
                continue
            relay_health.record_failure(relay, str(exc))
            logger.warning("relay %s failed: %s; moving on", relay.name, exc)
        else:
            if not connection.usable and feed.pending and not feed.control.stopped:
                continue  # it lost its connection slot: the rest needs a slot of its own
            if not feed.relay_in_trouble:
                return
            why = f"{pacing.TEMPFAILS_BEFORE_COOLDOWN} temporary failures in a row, the last: "
            relay_health.record_failure(relay, why + feed.last_tempfail, at_once=True)
            logger.warning("relay %s keeps answering 4xx; cooling it down", relay.name)
        failed_relays.add(relay.id)
        relay = _relay_with_room(campaign, feed, failed_relays, full)


def _relay_with_room(
    campaign: Campaign, feed: pacing.Feed, failed_relays: set[int], full: set[int]
) -> Relay | None:
    """The next relay for the feed, none of the failed ones, preferring one not known to
    be full; while every usable relay is full, waits a little at a time for a slot (the
    batch's lease renewed meanwhile). None when no relay is usable or the campaign stopped."""
    while True:
        relay = _pick_relay(campaign, failed_relays | full, feed.control.batch_id)
        if relay is not None or not full:
            break
        time.sleep(SLOT_WAIT_SECONDS)
        full.clear()
        if not feed.control.go_on():
            return None
    if relay is not None:
        feed.use(relay, _bucket(relay))
    return relay
