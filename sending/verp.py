"""VERP return paths: ``bounces+<delivery id>-<signature>@<bounce domain>``.

The signature is a short HMAC in lowercase hex, because some MTAs change the case
of local parts. The bounce app reads it back with :func:`delivery_id_from`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import cache

from django.conf import settings

PATTERN = re.compile(r"^bounces\+(\d+)-([0-9a-f]{16})@", re.IGNORECASE)


@cache
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"mailpanel.verp:" + secret.encode()).digest()


def _signature(delivery_id: int) -> str:
    digest = hmac.new(_key(settings.SECRET_KEY), str(delivery_id).encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def address(delivery_id: int, domain: str) -> str:
    return f"bounces+{delivery_id}-{_signature(delivery_id)}@{domain}"


def delivery_id_from(envelope_recipient: str) -> int | None:
    """The delivery named by a VERP address, or None if it is not one of ours."""
    match = PATTERN.match(envelope_recipient.strip().strip("<>"))
    if not match:
        return None
    delivery_id = int(match.group(1))
    if not hmac.compare_digest(_signature(delivery_id), match.group(2).lower()):
        return None
    return delivery_id
