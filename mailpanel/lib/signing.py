"""Signed tokens for subscriber links and public forms.

Each purpose has its own salt, so a token made for one purpose (say, preferences)
is refused by every other (say, unsubscribe). Tokens carry ids only, never an
address, and are compact (Django's signing with compression).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core import signing

SALT_PREFIX = "mailpanel.subscriber."


class BadToken(ValueError):
    """The token was tampered with, made for another purpose, or has expired."""


def _dumps(purpose: str, payload: object) -> str:
    return signing.dumps(payload, salt=SALT_PREFIX + purpose, compress=True)


def _loads(purpose: str, token: str, max_age: float | None = None) -> object:
    try:
        return signing.loads(token, salt=SALT_PREFIX + purpose, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError) as exc:
        # SignatureExpired is a BadSignature; garbage base64 or JSON ends up here too.
        raise BadToken(str(exc)) from exc


def _ints(values: object, count: int) -> list[int]:
    if not isinstance(values, list) or len(values) != count:
        raise BadToken("unexpected payload")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise BadToken("unexpected payload")
    return values


# --- Unsubscribe: subscriber, list and (optionally) the campaign the mail came from ---------


@dataclass(frozen=True)
class UnsubscribeToken:
    subscriber_id: int
    list_id: int
    campaign_id: int | None


def unsubscribe_token(subscriber_id: int, list_id: int, campaign_id: int | None = None) -> str:
    """Never expires: an unsubscribe link in an old mail must keep working."""
    return _dumps("unsubscribe", [subscriber_id, list_id, campaign_id or 0])


def read_unsubscribe_token(token: str) -> UnsubscribeToken:
    subscriber_id, list_id, campaign_id = _ints(_loads("unsubscribe", token), 3)
    return UnsubscribeToken(subscriber_id, list_id, campaign_id or None)


# --- Confirmation (double opt-in): expires ------------------------------------------------


@dataclass(frozen=True)
class ConfirmToken:
    subscription_ids: list[int]
    form_id: int | None


def confirm_token(subscription_ids: list[int], form_id: int | None) -> str:
    return _dumps("confirm", [list(subscription_ids), form_id or 0])


def read_confirm_token(token: str, max_age_seconds: float) -> ConfirmToken:
    payload = _loads("confirm", token, max_age=max_age_seconds)
    if not isinstance(payload, list) or len(payload) != 2:
        raise BadToken("unexpected payload")
    ids, form_id = payload
    if not isinstance(ids, list) or not ids or len(ids) > 50:
        raise BadToken("unexpected payload")
    return ConfirmToken(_ints(ids, len(ids)), _ints([form_id], 1)[0] or None)


# --- Preferences: the subscriber (all lists of one account) --------------------------------


def preference_token(subscriber_id: int) -> str:
    return _dumps("preferences", [subscriber_id])


def read_preference_token(token: str) -> int:
    return _ints(_loads("preferences", token), 1)[0]


# --- Fill time of a public form ------------------------------------------------------------


def form_timestamp(form_uuid: str) -> str:
    """A value rendered into a form: when it was rendered, for the minimum fill time."""
    return _dumps("form-rendered", [str(form_uuid), round(time.time(), 2)])


def seconds_since_rendered(token: str, form_uuid: str) -> float:
    """Seconds since the form was rendered; raises BadToken for another form or garbage."""
    payload = _loads("form-rendered", token)
    if not isinstance(payload, list) or len(payload) != 2 or payload[0] != str(form_uuid):
        raise BadToken("unexpected payload")
    if not isinstance(payload[1], int | float):
        raise BadToken("unexpected payload")
    return time.time() - float(payload[1])
