"""Token buckets in Redis, shared by every worker process on every host.

Celery's ``rate_limit`` counts per worker process, so ten processes would send ten
times the relay's limit. A bucket here is one Redis hash updated by a Lua script
(atomic, on Redis's own clock, so hosts with skewed clocks agree).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

# Refill at `rate` tokens per second up to `burst`; grant up to `want` tokens now.
# Returns {granted, milliseconds until the next token}.
TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {granted, wait}
"""


@dataclass(frozen=True)
class Grant:
    granted: int
    wait_seconds: float


class TokenBucket:
    """A named bucket: ``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, client: redis.Redis, name: str, rate: float, burst: float | None = None):
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.client = client
        self.key = f"mailpanel:bucket:{name}"
        self.rate = rate
        # One second's worth by default: short bursts are fine, a minute's backlog is not.
        self.burst = burst if burst is not None else max(1.0, rate)
        self._take = client.register_script(TAKE)

    def take(self, want: int = 1) -> Grant:
        """Takes up to ``want`` tokens now; says how long to wait before asking again."""
        granted, wait_ms = self._take(keys=[self.key], args=[self.rate, self.burst, want])
        return Grant(int(granted), int(wait_ms) / 1000)

    def reset(self) -> None:
        self.client.delete(self.key)


class DomainLimits:
    """The operators' per-recipient-domain limits of one worker process, as shared buckets.

    A domain found empty is not asked again until its next token is due: the
    recipients to it meanwhile are held without a round trip to Redis each.
    """

    def __init__(self, client: redis.Redis, per_minute: dict[str, int]) -> None:
        self.buckets = {
            domain: TokenBucket(client, f"domain:{domain}", limit / 60)
            for domain, limit in per_minute.items()
        }
        self.empty_until: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def hold(self, domain: str) -> float:
        """0 if a message to ``domain`` may go now (its token is taken), else the seconds
        after which this recipient should be tried again."""
        bucket = self.buckets.get(domain)
        if bucket is None:
            return 0.0
        now = time.monotonic()
        until = self.empty_until.get(domain, 0.0)
        if now >= until:
            grant = bucket.take(1)
            if grant.granted:
                return 0.0
            self.empty_until[domain] = until = now + grant.wait_seconds
            self.held[domain] = 0
        # The held recipients come back spread at the domain's rate, not all at once.
        self.held[domain] += 1
        return until - now + (self.held[domain] - 1) / bucket.rate
