"""Relays: connecting, testing, and their health (cool-down after failures)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from django.db.models import F
from django.utils import timezone

from sending.models import Relay

CONNECT_TIMEOUT_SECONDS = 15
# A relay that failed this many times in a row cools down, longer each time, up to an hour.
FAILURES_BEFORE_COOLDOWN = 3
MAX_COOLDOWN = timedelta(hours=1)


def connect(relay: Relay, timeout: float = CONNECT_TIMEOUT_SECONDS) -> smtplib.SMTP:
    """Opens an authenticated SMTP connection to the relay (the caller quits it)."""
    context = ssl.create_default_context()
    if relay.security == Relay.Security.TLS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            relay.host, relay.port, timeout=timeout, context=context
        )
    else:
        client = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    try:
        client.ehlo()
        if relay.security == Relay.Security.STARTTLS:
            client.starttls(context=context)
            client.ehlo()
        if relay.username:
            client.login(relay.username, relay.get_password())
    except BaseException:
        client.close()
        raise
    return client


@dataclass
class TestResult:
    ok: bool
    detail: str


def send_test(relay: Relay, sender: str, recipient: str) -> TestResult:
    """Sends one plain test message through the relay; says what happened, never raises."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"mailpanel relay test: {relay.name}"
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        f"This message was sent through the relay {relay.name} ({relay.host}:{relay.port}) "
        "to check that mailpanel can use it."
    )
    try:
        client = connect(relay)
        try:
            refused = client.send_message(message)
        finally:
            client.quit()
    except (smtplib.SMTPException, OSError) as exc:
        return TestResult(False, f"{type(exc).__name__}: {exc}")
    if refused:
        return TestResult(False, f"refused: {refused}")
    return TestResult(True, f"accepted for {recipient}")


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
