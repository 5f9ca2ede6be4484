"""Encryption of secrets stored in the database (relay passwords, DKIM private keys).

The key comes from the environment: ``MAILPANEL_ENCRYPTION_KEY`` (a Fernet key, see
``manage.py generate_encryption_key``). Without it, a key is derived from
``SECRET_KEY``, so rotating SECRET_KEY then makes stored secrets unreadable: set a
key of its own in production.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

__all__ = ["InvalidToken", "decrypt", "encrypt"]


@cache
def _fernet(key: str, secret_key: str) -> Fernet:
    if key:
        return Fernet(key.encode())
    derived = hashlib.sha256(b"mailpanel.encryption:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet() -> Fernet:
    return _fernet(settings.MAILPANEL_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode("ascii") if plain else ""


def decrypt(token: str) -> str:
    """Raises InvalidToken when the value was encrypted with another key."""
    return fernet().decrypt(token.encode()).decode() if token else ""
