"""Fixed-window rate limits on cache counters (Redis in production).

The counters live in the shared cache, so every web process on every machine
counts against the same limit. A window is a time bucket: the key names it, and
the entry expires with it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
import weakref
from collections.abc import Sequence

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

logger = logging.getLogger(__name__)

# (scope, key, rate): one limit to count a hit against, e.g. ("signup-ip", ip, "20/600").
Limit = tuple[str, str, str]

# Counts a hit on each key in order and stops at the first one over its limit, so a
# client refused by its own limit does not use up the next (shared) one. Returns the
# 1-based position of that key, or 0 when every limit holds. ARGV: limit, seconds, ...
COUNT_HITS = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if count > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""

# Django's RedisCache builds a new redis.Redis (copying its ~170 response callbacks)
# for every operation. One client per connection pool is thread-safe and free to reuse.
_scripts: weakref.WeakKeyDictionary[object, object] = weakref.WeakKeyDictionary()


def parse_rate(rate: str) -> tuple[int, int]:
    """ "20/600" -> (20, 600): at most 20 hits per 600 seconds."""
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds or 60)


def hit(scope: str, key: str, rate: str) -> bool:
    """Counts one hit; True while the count stays within the rate."""
    return first_exceeded([(scope, key, rate)]) is None


def first_exceeded(limits: Sequence[Limit]) -> str | None:
    """Counts one hit on each limit in order, in one round trip on Redis.

    Returns the scope of the first limit the hit exceeds, or None when all hold. Limits
    after an exceeded one are not counted. A cache outage counts nothing and returns None.
    """
    now = time.time()
    keys = []
    for scope, key, rate in limits:
        limit, window = parse_rate(rate)
        keys.append((_cache_key(scope, key, int(now // window)), limit, window))
    backend = caches[DEFAULT_CACHE_ALIAS]
    try:
        if isinstance(backend, RedisCache):
            position = _count_on_redis(backend, keys)
        else:
            position = _count_on_cache(backend, keys)
    except Exception:  # noqa: BLE001
        # A cache outage must not take the signup form down; it only loses the limit.
        logger.exception("rate limit cache unavailable")
        return None
    return limits[position - 1][0] if position else None


def _cache_key(scope: str, key: str, bucket: int) -> str:
    # Hash the key: addresses and IPs may hold characters a cache backend rejects.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"rl:{scope}:{digest}:{bucket}"


def _count_on_redis(backend: RedisCache, keys: list[tuple[str, int, int]]) -> int:
    # Keys go through the cache's prefix and version, so cache.clear() resets them and
    # cache.get reads them (Django stores integers as plain Redis integers).
    script = _scripts.get(backend._cache)
    if script is None:
        client = backend._cache.get_client(write=True)
        script = _scripts.setdefault(backend._cache, client.register_script(COUNT_HITS))
    names = [backend.make_and_validate_key(name) for name, _, _ in keys]
    args = [value for _, limit, window in keys for value in (limit, window + 1)]
    return int(script(keys=names, args=args))


def _count_on_cache(backend: BaseCache, keys: list[tuple[str, int, int]]) -> int:
    for position, (name, limit, window) in enumerate(keys, start=1):
        if _incr(backend, name, window) > limit:
            return position
    return 0


def _incr(backend: BaseCache, name: str, window: int) -> int:
    if backend.add(name, 1, timeout=window + 1):
        return 1
    try:
        return backend.incr(name)
    except ValueError:
        # The entry expired between add and incr: this is the first hit of a new window.
        return 1


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.TRUSTED_PROXIES:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_ip(request: HttpRequest) -> str:
    """The client's address: X-Forwarded-For is believed only when a trusted proxy sent it.

    Walks the header from the right (the entry our proxy added) and stops at the
    first address that is not one of our proxies: entries left of it are whatever
    the client chose to send.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    if not settings.TRUSTED_PROXIES or not _trusted(remote):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote
    return remote
