"""Connection slots: at most ``Relay.max_connections`` open SMTP connections to a relay,
counted across every worker process on every host.

A relay's slots are one sorted set in Redis: a member per open connection, scored by
the moment its slot runs out. A slot is taken before a connection is opened, renewed
while the connection lives and given back when it closes; a worker killed with its
connection open leaves a slot that expires on its own after ``SLOT_SECONDS``. The
scripts run on Redis's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from functools import cache

import redis
from django.conf import settings

from sending.models import Relay

logger = logging.getLogger(__name__)

# A slot not renewed for this long is free again (its holder died or hangs).
SLOT_SECONDS = 30.0
# Renewed this often while its connection lives: two renewals may fail before it expires.
RENEW_SECONDS = SLOT_SECONDS / 3

# Drop expired slots, then take one if fewer than the limit are held. Returns 1 or 0.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# Extend a slot still held. Returns 1, or 0 when it had run out (someone may have it now).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not until_ms or tonumber(until_ms) <= now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class NoSlot(Exception):
    """Every connection slot of the relay is taken: use another relay or wait."""


@cache
def _client() -> redis.Redis | None:
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


@cache
def _scripts(client: redis.Redis) -> tuple:
    return client.register_script(ACQUIRE), client.register_script(RENEW)


def key(relay_id: int) -> str:
    return f"mailpanel:relay-slots:{relay_id}"


class Slot:
    """One held slot; ``keep`` renews it when due (a clock read otherwise)."""

    def __init__(self, client: redis.Redis, relay: Relay, member: str) -> None:
        self.client = client
        self.relay = relay
        self.key = key(relay.id)
        self.member = member
        self.renew_at = time.monotonic() + RENEW_SECONDS

    def keep(self) -> bool:
        """True while the slot is held: renewed if due, taken again if it ran out and
        one is free. False: the connection must close."""
        now = time.monotonic()
        if now < self.renew_at:
            return True
        self.renew_at = now + RENEW_SECONDS
        _acquire, renew = _scripts(self.client)
        if renew(keys=[self.key], args=[int(SLOT_SECONDS * 1000), self.member]):
            return True
        logger.warning("connection slot of relay %s ran out; taking one again", self.relay.name)
        return _take(self.client, self.relay, self.member)

    def release(self) -> None:
        try:
            self.client.zrem(self.key, self.member)
        except redis.RedisError:
            # It expires on its own; a close must not fail for it.
            logger.warning("could not give back a connection slot of relay %s", self.relay.name)


def _take(client: redis.Redis, relay: Relay, member: str) -> bool:
    acquire, _renew = _scripts(client)
    limit = max(1, relay.max_connections)
    return bool(acquire(keys=[key(relay.id)], args=[limit, int(SLOT_SECONDS * 1000), member]))


def acquire(relay: Relay) -> Slot | None:
    """Takes a connection slot of the relay; None without Redis (no shared limit then).

    Raises NoSlot when the relay already has ``max_connections`` open connections.
    """
    client = _client()
    if client is None:
        return None
    member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    if not _take(client, relay, member):
        raise NoSlot(f"relay {relay.name} has all {relay.max_connections} connections open")
    return Slot(client, relay, member)


def held(relay_id: int) -> int:
    """How many slots of the relay are held now (expired ones not counted)."""
    client = _client()
    if client is None:
        return 0
    return client.zcount(key(relay_id), int(time.time() * 1000), "+inf")
