"""VERP return paths: ``bounces+<delivery id>-<signature>@<bounce domain>``.

The signature is a short HMAC in lowercase hex, because some MTAs change the case
of local parts. The bounce app reads it back with :func:`delivery_id_from`.

Mail without a Delivery row (confirmations, welcome mails, test sends) gets
``bounces+m<account id>-<ref>-<signature>@<bounce domain>``: ``ref`` also names the
message in its Message-ID (:func:`message_id`), and :func:`message_from` reads both
back, so a bounce of such a mail is traced to its account and message and never
taken for a campaign delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
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


MESSAGE_PATTERN = re.compile(r"^bounces\+m(\d+)-([0-9a-f]{20})-([0-9a-f]{16})@", re.IGNORECASE)


@dataclass(frozen=True)
class MessageRef:
    account_id: int | None
    ref: str


@cache
def _message_key(secret: str) -> bytes:
    # Its own key: a delivery's signature can never pass for a message's.
    return hashlib.sha256(b"mailpanel.verp.message:" + secret.encode()).digest()


def _message_signature(account_id: int, ref: str) -> str:
    digest = hmac.new(
        _message_key(settings.SECRET_KEY), f"{account_id}-{ref}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:16]


def message_ref(*parts: str) -> str:
    """A 20-hex reference for a message, the same for the same parts (so a retry of the
    same mail carries the same Message-ID and return path)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def message_address(account_id: int | None, ref: str, domain: str) -> str:
    account = account_id or 0
    return f"bounces+m{account}-{ref}-{_message_signature(account, ref)}@{domain}"


def message_id(ref: str, domain: str) -> str:
    return f"<m.{ref}@{domain}>"


def message_from(envelope_recipient: str) -> MessageRef | None:
    """The account and message named by a message return path, or None."""
    match = MESSAGE_PATTERN.match(envelope_recipient.strip().strip("<>"))
    if not match:
        return None
    account, ref = int(match.group(1)), match.group(2).lower()
    if not hmac.compare_digest(_message_signature(account, ref), match.group(3).lower()):
        return None
    return MessageRef(account or None, ref)
