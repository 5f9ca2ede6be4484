"""Signed URLs that go into a campaign per recipient: unsubscribe, preferences,
web version, and the tracking URLs (click and open) served by the stats app.

Unsubscribe and preferences tokens are exactly what ``mailpanel.lib.signing`` makes
(``signing.dumps`` with its salts and payloads), so the public pages read them with
``read_unsubscribe_token`` / ``read_preference_token``. They are computed here with
``hmac.digest`` on a key derived once per process, because the sending engine needs
several per recipient and ``signing.dumps`` costs about 15 microseconds each.

Tracking tokens: ``Signer(salt="mailpanel.tracking").unsign(token)`` gives
"<campaign id>.<recipient id>", the recipient id being the delivery id when the
sending engine passes one, else the subscriber id.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.core.signing import b62_encode

from mailpanel.lib import signing

UNSUBSCRIBE_SALT = signing.SALT_PREFIX + "unsubscribe"
PREFERENCES_SALT = signing.SALT_PREFIX + "preferences"
TRACKING_SALT = "mailpanel.tracking"


@cache
def _signer(salt: str, secret: str) -> Callable[[str], str]:
    # The same key derivation as django.utils.crypto.salted_hmac(salt + "signer", ...);
    # HMAC-SHA256 done by hand from pre-hashed pads (a copy is cheaper than a new HMAC).
    key = hashlib.sha256((salt + "signer" + secret).encode()).digest().ljust(64, b"\0")
    inner_base = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer_base = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    encode = base64.urlsafe_b64encode

    def sign(value: str) -> str:
        inner = inner_base.copy()
        inner.update(value.encode())
        outer = outer_base.copy()
        outer.update(inner.digest())
        return f"{value}:{encode(outer.digest()).rstrip(b'=').decode()}"

    return sign


def sign(salt: str, value: str) -> str:
    """``value:signature``, the same string as ``Signer(salt=salt).sign(value)``."""
    return _signer(salt, settings.SECRET_KEY)(value)


_timestamp: list = [0, ""]


def _now_b62() -> str:
    now = int(time.time())
    if _timestamp[0] != now:
        _timestamp[:] = [now, b62_encode(now)]
    return _timestamp[1]


def dumps(salt: str, payload_json: str) -> str:
    """A token ``signing.loads(token, salt=salt)`` reads as the payload, which is given
    already serialised compactly (``json.dumps(..., separators=(",", ":"))``)."""
    return sign(salt, _encode(payload_json) + _now_b62())


def _encode(payload_json: str) -> str:
    # Never compressed: a few integers do not shrink, and loads() accepts both forms.
    return base64.urlsafe_b64encode(payload_json.encode("latin-1")).rstrip(b"=").decode() + ":"


def site_url() -> str:
    return settings.SITE_URL.rstrip("/")


class UrlMaker:
    """Per-recipient URLs with the site address read once (settings access is slow)."""

    def __init__(self, campaign_id: int) -> None:
        site = site_url()
        self.campaign_id = campaign_id
        self.unsubscribe_prefix = f"{site}/s/unsubscribe/"
        self.preferences_prefix = f"{site}/s/preferences/"
        secret = settings.SECRET_KEY
        self.sign_tracking = _signer(TRACKING_SALT, secret)
        self.sign_unsubscribe = _signer(UNSUBSCRIBE_SALT, secret)
        self.sign_preferences = _signer(PREFERENCES_SALT, secret)

    def unsubscribe_url(self, subscriber_id: int, list_id: int) -> str:
        payload = _encode(f"[{int(subscriber_id)},{int(list_id)},{self.campaign_id}]")
        return f"{self.unsubscribe_prefix}{self.sign_unsubscribe(payload + _now_b62())}/"

    def preferences_url(self, subscriber_id: int) -> str:
        payload = _encode(f"[{int(subscriber_id)}]")
        return f"{self.preferences_prefix}{self.sign_preferences(payload + _now_b62())}/"

    def tracking_token(self, recipient_id: int | str) -> str:
        return self.sign_tracking(f"{self.campaign_id}.{recipient_id}")


def unsubscribe_url(subscriber_id: int, list_id: int, campaign_id: int | None = None) -> str:
    token = dumps(UNSUBSCRIBE_SALT, f"[{int(subscriber_id)},{int(list_id)},{campaign_id or 0}]")
    return f"{site_url()}/s/unsubscribe/{token}/"


def preferences_url(subscriber_id: int) -> str:
    return f"{site_url()}/s/preferences/{dumps(PREFERENCES_SALT, f'[{int(subscriber_id)}]')}/"


def web_version_url(campaign_uuid: str) -> str:
    return f"{site_url()}/c/{campaign_uuid}/"


def tracking_token(campaign_id: int, recipient_id: int | str) -> str:
    """One token per recipient; every tracked link of the message reuses it."""
    return sign(TRACKING_SALT, f"{campaign_id}.{recipient_id}")


def click_url_prefix() -> str:
    return f"{site_url()}/t/c/"


def open_url_prefix() -> str:
    return f"{site_url()}/t/o/"
