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

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def parse_rate(rate: str) -> tuple[int, int]:
    """ "20/600" -> (20, 600): at most 20 hits per 600 seconds."""
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds or 60)


def hit(scope: str, key: str, rate: str) -> bool:
    """Counts one hit; True while the count stays within the rate."""
    limit, window = parse_rate(rate)
    bucket = int(time.time() // window)
    # Hash the key: addresses and IPs may hold characters a cache backend rejects.
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    cache_key = f"rl:{scope}:{digest}:{bucket}"
    try:
        if _is_redis():
            return _redis_incr(cache_key, window) <= limit
        if cache.add(cache_key, 1, timeout=window + 1):
            return limit >= 1
        count = cache.incr(cache_key)
    except ValueError:
        # The entry expired between add and incr: this is the first hit of a new window.
        return limit >= 1
    except Exception:  # noqa: BLE001
        # A cache outage must not take the signup form down; it only loses the limit.
        logger.exception("rate limit cache unavailable")
        return True
    return count <= limit


def _is_redis() -> bool:
    return isinstance(cache, RedisCache) or isinstance(getattr(cache, "_wrapped", None), RedisCache)


def _redis_incr(cache_key: str, window: int) -> int:
    # One round trip: INCR creates the key at 1, EXPIRE ends it with its window. Django's
    # Redis cache stores integers as plain Redis integers, so cache.get reads them too.
    key = cache.make_and_validate_key(cache_key)
    client = cache._cache.get_client(key, write=True)
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count, _ = pipe.execute()
    return int(count)


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
