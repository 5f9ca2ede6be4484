"""Taking an open or a click: verify the token, note the hit in the Redis buffer, answer.

This is the hot path of the public endpoints, so a hit costs one HMAC and one RPUSH and
no database query: a click's target comes from a per-process cache of the campaign's
stored links. The drain (stats/drain.py) turns buffered hits into events in bulk. With
Redis down (or no REDIS_URL, the embedded default) a hit is written straight to the
database instead, slower but never lost.

Tokens are the sending engine's (campaigns.links): ``"<campaign id>.<delivery id>:<sig>"``,
``Signer(salt="mailpanel.tracking")``, checked here with the same hand-made HMAC.

Addresses are never kept in clear: ``STATS_IP_MODE`` is ``truncate`` (the /24 of IPv4,
the /48 of IPv6; the default), ``hash`` (HMAC-SHA256 with the SECRET_KEY, shortened) or
``none``. The provider network of the address is looked up before that (stats.machines).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from campaigns import links
from stats import machines

logger = logging.getLogger(__name__)

BUFFER_KEY = "stats:hits"
OPEN, CLICK, WEB = "o", "c", "w"
LINK_CACHE_SECONDS = 600
# After Redis failed, hits go to the database for this long before Redis is tried again:
# a dead Redis must not add a connection timeout to every request.
REDIS_RETRY_SECONDS = 5.0
MAX_AGENT = 300


@dataclass(frozen=True, slots=True)
class Hit:
    """One open or click as it waits in the buffer: plain values, IP already anonymised."""

    kind: str  # OPEN, CLICK or WEB (the web version opened with the recipient's token)
    campaign_id: int
    delivery_id: int
    link_index: int
    at: float  # seconds since the epoch
    agent: str
    ip: str
    network: str

    def encode(self) -> str:
        return json.dumps(
            [self.kind, self.campaign_id, self.delivery_id, self.link_index, self.at,
             self.agent, self.ip, self.network],
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes | str) -> Hit | None:
        """The hit, or None for anything that is not one (logged, never raised)."""
        try:
            kind, campaign, delivery, index, at, agent, ip, network = json.loads(raw)
            hit = cls(str(kind), int(campaign), int(delivery), int(index), float(at),
                      str(agent), str(ip), str(network))  # fmt: skip
        except (TypeError, ValueError):
            logger.warning("dropped an unreadable tracking hit: %r", raw[:200])
            return None
        return hit if hit.kind in (OPEN, CLICK, WEB) else None


# --- Tokens --------------------------------------------------------------------------------


def read_token(token: str) -> tuple[int, int] | None:
    """(campaign id, delivery id) of a valid tracking token, else None."""
    value, sep, _signature = token.rpartition(":")
    if not sep or len(token) > 200:
        return None
    expected = links.sign(links.TRACKING_SALT, value)
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    campaign, dot, delivery = value.partition(".")
    if not (dot and campaign.isdigit() and delivery.isdigit()):
        return None
    return int(campaign), int(delivery)


# --- Addresses -----------------------------------------------------------------------------


@cache
def _ip_key(secret: str) -> bytes:
    return hashlib.sha256(b"mailpanel.stats.ip" + secret.encode()).digest()


def anonymise_ip(ip: str) -> str:
    """The address as the log may keep it, per STATS_IP_MODE ("" for a bad address)."""
    mode = settings.STATS_IP_MODE
    if mode == "none" or not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if mode == "hash":
        digest = hmac.new(_ip_key(settings.SECRET_KEY), address.packed, hashlib.sha256)
        return digest.hexdigest()[:24]
    if address.version == 4:
        return f"{ipaddress.IPv4Address(int(address) & 0xFFFFFF00)}/24"
    return f"{ipaddress.IPv6Address(int(address) >> 80 << 80)}/48"


def client_ip(meta: dict) -> str:
    from lists.ratelimit import client_ip as panel_client_ip

    if not settings.TRUSTED_PROXIES:
        return meta.get("REMOTE_ADDR", "") or ""
    return panel_client_ip(_Request(meta))  # believes X-Forwarded-For from our proxies only


@dataclass
class _Request:
    META: dict  # noqa: N815 (the shape lists.ratelimit.client_ip reads)


def make_hit(kind: str, campaign_id: int, delivery_id: int, index: int, meta: dict) -> Hit:
    ip = client_ip(meta)
    return Hit(
        kind=kind,
        campaign_id=campaign_id,
        delivery_id=delivery_id,
        link_index=index,
        at=time.time(),
        agent=meta.get("HTTP_USER_AGENT", "")[:MAX_AGENT],
        ip=anonymise_ip(ip),
        network=machines.network_of(ip),
    )


# --- Stored links --------------------------------------------------------------------------

_links: dict[int, tuple[float, dict[int, str]]] = {}


def link_target(campaign_id: int, index: int) -> str | None:
    """The stored URL of the campaign's link ``index``; None when there is no such link.

    Loaded once per campaign and process (one query), kept for LINK_CACHE_SECONDS: a
    campaign's links are fixed once it is frozen for sending.
    """
    now = time.monotonic()
    cached = _links.get(campaign_id)
    if cached is None or now - cached[0] > LINK_CACHE_SECONDS:
        from campaigns.models import Link

        if len(_links) > 1000:
            _links.clear()
        rows = Link.objects.filter(campaign_id=campaign_id).values_list("index", "url")
        cached = (now, dict(rows))
        _links[campaign_id] = cached
    return cached[1].get(index)


# --- The buffer ----------------------------------------------------------------------------

_redis_down_until = [0.0]


@cache
def buffer_client() -> redis.Redis | None:
    """The Redis client of the buffer, or None without REDIS_URL (the embedded default)."""
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=1.0)


def take(hit: Hit) -> str:
    """Keeps the hit: in the Redis buffer, else straight in the database. Returns where."""
    client = buffer_client()
    if client is not None and time.monotonic() >= _redis_down_until[0]:
        try:
            client.rpush(BUFFER_KEY, hit.encode())
            return "buffer"
        except redis.RedisError as exc:
            _redis_down_until[0] = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning("tracking buffer unavailable, writing to the database: %s", exc)
    from stats import drain

    drain.write_hits([hit])
    return "database"


def take_web_open(campaign_id: int, token: str, meta: dict) -> bool:
    """Counts the web version of a campaign opened with a recipient's token as an open.

    Returns whether it counted; a token that is bad or of another campaign does nothing.
    Never raises: the page is shown whatever happens here.
    """
    ids = read_token(token)
    if ids is None or ids[0] != campaign_id:
        return False
    try:
        take(make_hit(WEB, ids[0], ids[1], 0, meta))
    except Exception:
        logger.exception("could not keep a web version open")
        return False
    return True
