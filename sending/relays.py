"""Relays: connecting, testing, and their health (cool-down after failures)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from functools import cache

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address
from django.db.models import F, Q
from django.utils import timezone

from sending.models import Relay, SendingDomain

CONNECT_TIMEOUT_SECONDS = 15
# A relay that failed this many times in a row cools down, longer each time, up to an hour.
FAILURES_BEFORE_COOLDOWN = 3
MAX_COOLDOWN = timedelta(hours=1)


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process. Making one loads the system's CA bundle,
    tens of milliseconds: per connection, and a send worker connects once a batch, that
    cost alone was several percent of its time."""
    return ssl.create_default_context()


def connect(relay: Relay, timeout: float = CONNECT_TIMEOUT_SECONDS) -> smtplib.SMTP:
    """Opens an authenticated SMTP connection to the relay (the caller quits it)."""
    if relay.security == Relay.Security.TLS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            relay.host, relay.port, timeout=timeout, context=tls_context()
        )
    else:
        client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    try:
        client.ehlo()
        if relay.security == Relay.Security.STARTTLS:
            client.starttls(context=tls_context())
            client.ehlo()
        if relay.username:
            client.login(relay.username, relay.get_password())
    except BaseException:
        client.close()
        raise
    return client


@dataclass(frozen=True)
class SendTestResult:
    ok: bool
    detail: str  # the relay's own reply, or what went wrong and where


def sender_for_test(relay: Relay) -> tuple[str, int | None]:
    """The From address of a relay test and the account whose DKIM key signs it.

    An address on a verified sending domain that may send through this relay (the
    operators' domains first, then those of the accounts it is dedicated to), with
    DEFAULT_FROM_EMAIL's local part; DEFAULT_FROM_EMAIL itself when its own domain is
    one of them or when none is verified.
    """
    default = parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or settings.DEFAULT_FROM_EMAIL
    local, _, default_domain = default.rpartition("@")
    candidates = SendingDomain.objects.filter(verified_at__isnull=False).filter(
        Q(account__isnull=True) | Q(account__in=relay.accounts.all())
    )
    verified = list(
        candidates.order_by(F("account").asc(nulls_first=True), "domain").values_list(
            "domain", "account_id"
        )
    )
    for domain, account_id in verified:
        if domain == default_domain.lower():
            return default, account_id
    if verified:
        domain, account_id = verified[0]
        return f"{local or 'mailpanel'}@{domain}", account_id
    return default, None


def send_test(relay: Relay, recipient: str) -> SendTestResult:
    """Sends one test message through this relay and no other; never raises for what
    the network or the relay does. The result holds the relay's reply to the message,
    or the refusal or error and the step it came at.

    The message is built, signed and addressed as the server's own mail is
    (sending.backend.prepare), from :func:`sender_for_test`.
    """
    # backend sends through this module's connections: imported here so the import
    # graph stays one-way at load time.
    from sending import backend

    sender, account_id = sender_for_test(relay)
    mail = EmailMessage(
        subject=f"mailpanel relay test: {relay.name}",
        body=(
            f"This message was sent through the relay {relay.name} ({relay.host}:{relay.port})"
            f" at {timezone.now():%Y-%m-%d %H:%M:%S} UTC to check that mailpanel can use it."
        ),
        from_email=sender,
        to=[recipient],
    )
    envelope_sender, data = backend.prepare(mail, account_id)
    try:
        client = connect(relay)
    except (smtplib.SMTPException, OSError) as exc:
        return SendTestResult(False, f"could not open a session: {_describe(exc)}")
    try:
        result = _transaction(client, envelope_sender, sanitize_address(recipient, "utf-8"), data)
    except (smtplib.SMTPException, OSError) as exc:
        return SendTestResult(False, f"the session failed: {_describe(exc)}")
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
    if not result.ok:
        return result
    return SendTestResult(True, f"accepted for {recipient}, from {sender}: {result.detail}")


def _transaction(client: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> SendTestResult:
    # Step by step rather than sendmail(), which keeps the relay's final reply to itself.
    code, reply = client.mail(sender)
    if code != 250:
        return SendTestResult(False, f"MAIL FROM:<{sender}> refused: {code} {_text(reply)}")
    code, reply = client.rcpt(recipient)
    if code not in (250, 251):
        return SendTestResult(False, f"RCPT TO:<{recipient}> refused: {code} {_text(reply)}")
    try:
        code, reply = client.data(data)
    except smtplib.SMTPDataError as exc:  # DATA itself refused, before the content
        return SendTestResult(False, f"DATA refused: {exc.smtp_code} {_text(exc.smtp_error)}")
    if code != 250:
        return SendTestResult(False, f"the message was refused: {code} {_text(reply)}")
    return SendTestResult(True, f"{code} {_text(reply)}")


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def record_failure(relay: Relay, error: str, at_once: bool = False) -> None:
    """Counts a failure; past the threshold the relay cools down (doubling, capped).

    ``at_once``: cool down now (the failure is already a pattern, e.g. many 4xx in a row).
    """
    Relay.objects.filter(id=relay.id).update(
        consecutive_failures=F("consecutive_failures") + 1, last_error=error[:2000]
    )
    relay.refresh_from_db(fields=["consecutive_failures"])
    over = max(0, relay.consecutive_failures - FAILURES_BEFORE_COOLDOWN)
    if at_once or relay.consecutive_failures >= FAILURES_BEFORE_COOLDOWN:
        cooldown = min(MAX_COOLDOWN, timedelta(seconds=30) * (2**over))
        Relay.objects.filter(id=relay.id).update(cooldown_until=timezone.now() + cooldown)


def record_success(relay: Relay) -> None:
    if relay.consecutive_failures or relay.cooldown_until:
        Relay.objects.filter(id=relay.id).update(consecutive_failures=0, cooldown_until=None)
