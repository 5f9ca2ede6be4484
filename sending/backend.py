"""Django's mail backend for mailpanel's own mail (confirmations, welcome mails,
password resets), and :func:`deliver` for prepared messages (test sends): through
the same relays, rate limits, DKIM keys and return paths as campaigns, without
batches or Delivery rows (it runs in whatever task sends the mail, on ``default``).

Relays are tried in an order drawn by weight, healthy ones first; a relay that
cannot be reached is counted as failing and the message goes to the next one. Mail
that belongs to an account (:func:`belongs_to`) goes only through that account's
dedicated relays when it has any.

With no usable relay (the embedded default, or before an operator adds one) mail
goes to EMAIL_FALLBACK_BACKEND: EMAIL_URL's server, or the local outbox.
"""

from __future__ import annotations

import logging
import random
import smtplib
import time
from collections.abc import Sequence
from functools import cache

import redis
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage, sanitize_address

from sending import dkim, domains, relays, smtp, verp
from sending.models import Relay, RelayQuerySet, SendingDomain
from sending.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

ACCOUNT_ATTRIBUTE = "mailpanel_account_id"
_random = random.SystemRandom()


class NoRelay(Exception):
    """No relay is configured for this mail: the caller uses the fallback backend."""


def _pool(relays: RelayQuerySet, account_id: int | None) -> RelayQuerySet:
    return relays.for_account(account_id) if account_id else relays.filter(accounts__isnull=True)


def belongs_to(message: EmailMessage, account: object) -> EmailMessage:
    """Marks a message as the account's (its relays, its DKIM keys); returns it."""
    setattr(message, ACCOUNT_ATTRIBUTE, getattr(account, "pk", account))
    return message


def relay_order(account_id: int | None) -> list[Relay]:
    """Usable relays for the account's mail in the order to try them: relays without
    recent failures first, each group shuffled by weight (weight 0: only as a last resort)."""
    pool = _pool(Relay.objects.usable(), account_id)

    def key(relay: Relay) -> tuple[bool, bool, float]:
        # Weighted shuffle (Efraimidis-Spirakis): the larger of random ** (1 / weight) first.
        draw = _random.random() ** (1 / relay.weight) if relay.weight else 0.0
        return relay.consecutive_failures > 0, relay.weight == 0, -draw

    return sorted(pool.distinct(), key=key)


@cache
def _redis() -> redis.Redis | None:
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def _wait_for_tokens(relay: Relay, count: int) -> None:
    """Takes from the relay's shared bucket, the one campaign workers use too."""
    client = _redis()
    if client is None or count <= 0:
        return
    bucket = TokenBucket(client, f"relay:{relay.id}", relay.rate_per_second)
    while count > 0:
        grant = bucket.take(count)
        count -= grant.granted
        if count > 0:
            time.sleep(max(grant.wait_seconds, 0.005))


def deliver(account_id: int | None, items: list[smtp.Item]) -> dict[object, smtp.Outcome]:
    """Sends (key, envelope sender, recipient, message bytes) items; returns each key's
    outcome. A relay that fails to connect or drops the session is counted as failing
    and the items not yet sent move to the next relay; with none left, they are
    DEFERRED. A message lost after its final dot is UNKNOWN and never sent again.

    Raises NoRelay when no relay is configured for the account's mail (relays that
    exist but cool down are not that: the items are DEFERRED, to be tried later).
    """
    candidates = relay_order(account_id)
    if not candidates and not _pool(Relay.objects.filter(enabled=True), account_id).exists():
        raise NoRelay
    outcomes: dict[object, smtp.Outcome] = {}
    todo = list(items)
    for relay in candidates:
        todo = _deliver_through(relay, todo, outcomes)
        if not todo:
            break
    nobody = smtp.Outcome(smtp.DEFERRED, None, "no relay could take the message")
    return {item[0]: outcomes.get(item[0], nobody) for item in items}


def _deliver_through(
    relay: Relay, todo: list[smtp.Item], outcomes: dict[object, smtp.Outcome]
) -> list[smtp.Item]:
    """Sends what it can through one relay; returns the items it could not."""
    _wait_for_tokens(relay, len(todo))
    try:
        connection = smtp.Connection(relay)
    except (smtplib.SMTPException, OSError) as exc:
        relays.record_failure(relay, f"{type(exc).__name__}: {exc}")
        logger.warning("relay %s unreachable: %s; trying the next", relay.name, exc)
        return todo
    try:
        for key, outcome in connection.send_many(todo):
            outcomes[key] = outcome
    except (smtp.ConnectionLost, OSError) as exc:
        lost = exc.unknown if isinstance(exc, smtp.ConnectionLost) else []
        outcomes.update(dict(lost))
        if not lost:
            # A session lost after a message's final dot is not the relay failing.
            relays.record_failure(relay, str(exc))
        logger.warning("relay %s dropped the session: %s; trying the next", relay.name, exc)
        # What was not answered for, whether taken by the session or not yet reached.
        return [item for item in todo if item[0] not in outcomes]
    finally:
        connection.close()
    relays.record_success(relay)
    return []


class _Bytes:
    """What the fallback backends read of a message: its bytes, exactly as built."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def as_bytes(self, *args: object, **kwargs: object) -> bytes:
        return self.data


class _PreparedMessage(EmailMessage):
    def __init__(self, sender: str, recipient: str, data: bytes) -> None:
        super().__init__(from_email=sender, to=[recipient])
        self.data = data

    def message(self, *args: object, **kwargs: object) -> _Bytes:  # type: ignore[override]
        return _Bytes(self.data)


def send_prepared(account_id: int | None, items: list[smtp.Item]) -> int:
    """Sends built messages through :func:`deliver` (or the fallback backend when there
    is no relay); returns how many were accepted. Refusals are logged, not raised."""
    try:
        outcomes = deliver(account_id, items)
    except NoRelay:
        fallback = get_connection(settings.EMAIL_FALLBACK_BACKEND)
        return fallback.send_messages([_PreparedMessage(*item[1:]) for item in items]) or 0
    for key, outcome in outcomes.items():
        if outcome.status not in (smtp.SENT, smtp.UNKNOWN):
            logger.warning("mail to %s refused: %s %s", key, outcome.code, outcome.response)
    return sum(o.status in (smtp.SENT, smtp.UNKNOWN) for o in outcomes.values())


def _account_of(message: EmailMessage) -> int | None:
    """The account a message belongs to: as marked, else the one account that verified
    its From domain (when no operator domain covers it)."""
    marked = getattr(message, ACCOUNT_ATTRIBUTE, None)
    if marked:
        return int(marked)
    owners = list(
        SendingDomain.objects.filter(
            domain=domains.domain_of(message.from_email), verified_at__isnull=False
        ).values_list("account_id", flat=True)[:2]
    )
    return owners[0] if len(owners) == 1 else None


def _ref(message: EmailMessage, account_id: int | None) -> str:
    alternatives = [str(content) for content, _type in getattr(message, "alternatives", [])]
    return verp.message_ref(
        str(account_id or 0), message.from_email, *message.recipients(),
        message.subject, message.body, *alternatives,
    )  # fmt: skip


def prepare(message: EmailMessage, account_id: int | None) -> tuple[str, bytes]:
    """(envelope sender, signed bytes) of a Django message: a deterministic Message-ID
    (unless the caller set one) and a VERP return path naming the account and message."""
    encoding = message.encoding or settings.DEFAULT_CHARSET
    from_domain = domains.domain_of(sanitize_address(message.from_email, encoding))
    ref = _ref(message, account_id)
    mime = message.message()
    if not any(name.lower() == "message-id" for name in message.extra_headers):
        del mime["Message-ID"]
        mime["Message-ID"] = verp.message_id(ref, from_domain or "localhost")
    data = mime.as_bytes(linesep="\r\n")
    signing = domains.signing_domain(message.from_email, account_id)
    if signing is not None:
        data = dkim.sign(data, domains.signing_keys(signing))
    sender = verp.message_address(account_id, ref, settings.BOUNCE_DOMAIN or from_domain)
    return sender, data


class RelayBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        by_account: dict[int | None, list[EmailMessage]] = {}
        for message in email_messages:
            if message.recipients():
                by_account.setdefault(_account_of(message), []).append(message)
        sent = 0
        for account_id, messages in by_account.items():
            try:
                sent += self._send(account_id, messages)
            except NoRelay:
                fallback = get_connection(
                    settings.EMAIL_FALLBACK_BACKEND, fail_silently=self.fail_silently
                )
                sent += fallback.send_messages(messages) or 0
        return sent

    def _send(self, account_id: int | None, messages: list[EmailMessage]) -> int:
        items: list[smtp.Item] = []
        for index, message in enumerate(messages):
            encoding = message.encoding or settings.DEFAULT_CHARSET
            sender, data = prepare(message, account_id)
            for recipient in message.recipients():
                items.append(
                    ((index, recipient), sender, sanitize_address(recipient, encoding), data)
                )
        outcomes = deliver(account_id, items)
        accepted = {i for (i, _r), o in outcomes.items() if o.status in (smtp.SENT, smtp.UNKNOWN)}
        refused = {r: (o.code or 0, o.response) for (_i, r), o in outcomes.items()
                   if o.status not in (smtp.SENT, smtp.UNKNOWN)}  # fmt: skip
        for key, outcome in outcomes.items():
            if outcome.status == smtp.UNKNOWN:
                # Maybe delivered: sending it again could make a duplicate, so it counts.
                logger.warning("mail to %s may not have arrived: %s", key[1], outcome.response)
        if refused and len(accepted) < len(messages):
            logger.warning("mail refused: %s", refused)
            if not self.fail_silently:
                if all(o.status == smtp.DEFERRED and o.code is None for o in outcomes.values()):
                    raise smtplib.SMTPServerDisconnected("no relay could take the mail")
                raise smtplib.SMTPRecipientsRefused(refused)
        return len(accepted)
