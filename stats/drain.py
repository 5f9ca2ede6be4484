"""Moving buffered opens and clicks from Redis into the event log, a chunk at a time.

Taking a chunk is one Lua script, atomic in Redis: up to N hits move from the buffer to a
processing list, which gets a fresh chunk key. The chunk is then written in one database
transaction that also inserts the key into DrainedChunk; only after the commit is the
processing list cleared. So:

- a drain that dies before its commit leaves the hits in the processing list: the next
  drain takes that same list (same key) again before anything new, and nothing is lost;
- a drain that dies after its commit but before clearing finds its key already in
  DrainedChunk the next time: it clears the list without writing, and nothing counts twice.

Per chunk, whatever its size: one query resolves every delivery to its campaign,
subscriber, list, account and receiving domain; one query reads the recipients' clicks
already in the log around the chunk's clicks (a scanner's burst may be cut between two
chunks, or come one hit at a time while Redis is down); one COPY writes the events; the
rollups take one statement per table (stats.rollups).
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from lists.models import Subscription
from sending.models import Delivery
from stats import events, machines
from stats.events import Event, Kind
from stats.models import DrainedChunk, TrackingEvent
from stats.tracking import BUFFER_KEY, CLICK, WEB, Hit, buffer_client

logger = logging.getLogger(__name__)

# Clicks on different links of one mail this close together are a link scanner's.
BURST_SECONDS = 1.0

PROCESSING_KEY = BUFFER_KEY + ":processing"
CHUNK_KEY = BUFFER_KEY + ":processing:key"
LOCK_KEY = BUFFER_KEY + ":drain-lock"

# KEYS: buffer, processing, chunk key. ARGV: chunk size, a new chunk key.
# Returns {chunk key, hits}: the unfinished chunk first, else up to N new hits.
TAKE_SCRIPT = """
local pending = redis.call('LRANGE', KEYS[2], 0, -1)
if #pending > 0 then
  local key = redis.call('GET', KEYS[3])
  if not key then
    key = ARGV[2]
    redis.call('SET', KEYS[3], key)
  end
  return {key, pending}
end
local hits = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #hits == 0 then
  return {'', hits}
end
redis.call('LTRIM', KEYS[1], #hits, -1)
for i = 1, #hits, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(hits, i, math.min(i + 999, #hits)))
end
redis.call('SET', KEYS[3], ARGV[2])
return {ARGV[2], hits}
"""


def take_chunk(client: redis.Redis, size: int) -> tuple[str, list[bytes]]:
    """(chunk key, raw hits) moved to the processing list; ("", []) when there is nothing."""
    key, hits = client.eval(
        TAKE_SCRIPT, 3, BUFFER_KEY, PROCESSING_KEY, CHUNK_KEY, size, uuid.uuid4().hex
    )
    return (key.decode() if isinstance(key, bytes) else key), list(hits)


def finish_chunk(client: redis.Redis) -> None:
    client.delete(PROCESSING_KEY, CHUNK_KEY)


def drain(chunk_size: int | None = None, max_seconds: float = 20.0) -> int:
    """Drains the buffer until it is empty or ``max_seconds`` have passed.

    Returns how many hits were written. One drain at a time (a Redis lock); a second
    one returns 0 at once. Without Redis there is no buffer and nothing to do.
    """
    client = buffer_client()
    if client is None:
        return 0
    size = chunk_size or settings.STATS_DRAIN_CHUNK_SIZE
    lock = client.lock(LOCK_KEY, timeout=max_seconds + 60, blocking=False)
    written, started = 0, time.monotonic()
    try:
        if not lock.acquire():
            return 0
        try:
            while time.monotonic() - started < max_seconds:
                key, raw = take_chunk(client, size)
                if not raw:
                    break
                written += write_chunk(key, raw)
                finish_chunk(client)
        finally:
            lock.release()
    except redis.RedisError as exc:
        # Whatever was taken stays in the processing list for the next drain; meanwhile
        # the web processes write hits straight to the database.
        logger.warning("tracking buffer unavailable, drained %s hits: %s", written, exc)
    return written


def write_chunk(key: str, raw: Sequence[bytes]) -> int:
    """Writes one taken chunk unless it was written before; returns the events written."""
    hits = [hit for hit in map(Hit.decode, raw) if hit is not None]
    with transaction.atomic():
        if not _claim(key):
            logger.info("tracking chunk %s was already written; clearing it", key)
            return 0
        return write_hits(hits)


def _claim(key: str) -> bool:
    table = DrainedChunk._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("key", created_at) VALUES (%s, %s) '  # noqa: S608 (a name)
            'ON CONFLICT ("key") DO NOTHING RETURNING "key"',
            [key, connection.ops.adapt_datetimefield_value(datetime.datetime.now(tz=datetime.UTC))],
        )
        return cursor.fetchone() is not None


def write_hits(hits: Sequence[Hit]) -> int:
    """Turns hits into events (resolved, classified) and records them; returns how many.

    Hits whose delivery does not exist or belongs to another campaign are dropped.
    """
    if not hits:
        return 0
    deliveries = _resolve({hit.delivery_id for hit in hits})
    bursts = _click_bursts(hits)
    rows = []
    for hit in hits:
        found = deliveries.get(hit.delivery_id)
        if found is None or found["campaign_id"] != hit.campaign_id:
            continue
        rows.append(_event(hit, found, bursts))
    if len(rows) < len(hits):
        logger.warning("dropped %s tracking hits of unknown deliveries", len(hits) - len(rows))
    return events.record_many(rows)


def _resolve(delivery_ids: set[int]) -> dict[int, dict]:
    """One query: each delivery's campaign, subscriber, list, account, domain and send time."""
    first_list = (
        Subscription.objects.filter(
            subscriber_id=OuterRef("subscriber_id"),
            mailing_list__campaigns=OuterRef("campaign_id"),
        )
        .order_by("mailing_list_id")
        .values("mailing_list_id")[:1]
    )
    rows = (
        Delivery.objects.filter(id__in=delivery_ids)
        .annotate(list_id=Subquery(first_list))
        .values(
            "id", "campaign_id", "subscriber_id", "sent_at", "list_id",
            "campaign__account_id", "subscriber__domain",
        )
    )  # fmt: skip
    return {row["id"]: row for row in rows}


def _click_bursts(hits: Sequence[Hit]) -> set[Hit]:
    """The click hits within BURST_SECONDS of a click on another link of the same delivery,
    whether that click is in this chunk or already in the log. One query, none without
    clicks."""
    clicks = [hit for hit in hits if hit.kind == CLICK]
    if not clicks:
        return set()
    by_delivery: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for hit in clicks:
        by_delivery[hit.delivery_id].append((hit.at, hit.link_index))
    for delivery_id, at, link_index in _logged_clicks(clicks):
        by_delivery[delivery_id].append((at, link_index))
    return {
        hit
        for hit in clicks
        if any(
            index != hit.link_index and abs(at - hit.at) <= BURST_SECONDS
            for at, index in by_delivery[hit.delivery_id]
        )
    }


def _logged_clicks(clicks: Sequence[Hit]) -> list[tuple[int, float, int]]:
    """(delivery, time, link) of the log's clicks of these deliveries around these clicks.

    Looks back no further than the chunk's earliest click less BURST_SECONDS (and ahead
    no further than its latest plus that), so an index on the time reads those seconds'
    clicks only, however old the log.
    """
    window = datetime.timedelta(seconds=BURST_SECONDS)
    moments = [hit.at for hit in clicks]
    since = datetime.datetime.fromtimestamp(min(moments), tz=datetime.UTC) - window
    until = datetime.datetime.fromtimestamp(max(moments), tz=datetime.UTC) + window
    rows = (
        TrackingEvent.objects.filter(
            campaign_id__in={hit.campaign_id for hit in clicks},
            kind=Kind.CLICKED,
            occurred_at__gte=since,
            occurred_at__lte=until,
            delivery_id__in={hit.delivery_id for hit in clicks},
            link_index__isnull=False,
        )
        .values_list("delivery_id", "occurred_at", "link_index")
        .order_by()
    )
    return [(delivery, at.timestamp(), index) for delivery, at, index in rows]


def _machine_reason(hit: Hit, sent_at: datetime.datetime | None, bursts: set) -> str:
    if hit.kind != CLICK:
        return machines.open_reason(hit.agent, hit.network)
    reason = machines.click_reason(hit.agent, hit.network)
    if reason:
        return reason
    if sent_at is not None and hit.at - sent_at.timestamp() < settings.STATS_SCANNER_SECONDS:
        return "clicked_right_after_sending"
    if hit in bursts:
        return "several_links_in_one_second"
    return ""


def _event(hit: Hit, found: dict, bursts: set) -> Event:
    reason = _machine_reason(hit, found["sent_at"], bursts)
    details = {"ua": machines.agent_family(hit.agent)}
    if hit.ip:
        details["ip"] = hit.ip
    if hit.network:
        details["network"] = hit.network
    if reason:
        details["machine"] = reason
    if hit.kind == WEB:
        details["via"] = "web_version"
    return Event(
        kind=Kind.CLICKED if hit.kind == CLICK else Kind.OPENED,
        occurred_at=datetime.datetime.fromtimestamp(hit.at, tz=datetime.UTC),
        account_id=found["campaign__account_id"],
        campaign_id=hit.campaign_id,
        mailing_list_id=found["list_id"],
        subscriber_id=found["subscriber_id"],
        delivery_id=hit.delivery_id,
        recipient_domain=found["subscriber__domain"] or "",
        link_index=hit.link_index if hit.kind == CLICK else None,
        machine=bool(reason),
        details=details,
    )


def prune_drained(days: int = 1) -> int:
    """Forgets chunk keys older than ``days``: a crashed drain is resumed within seconds."""
    cutoff = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(days=days)
    deleted, _ = DrainedChunk.objects.filter(created_at__lt=cutoff).delete()
    return deleted
