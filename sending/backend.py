"""Django's mail backend for mailpanel's own mail (confirmations, welcome mails, test
sends, password resets): through the configured relays with DKIM, like campaigns.

With no usable relay (the embedded default, or before an operator adds one) it
hands the mail to EMAIL_FALLBACK_BACKEND: EMAIL_URL's server, or the local outbox.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage, sanitize_address
from django.db.models import F

from sending import dkim, domains, relays
from sending.models import Relay, SendingDomain

logger = logging.getLogger(__name__)


def _keys_for(from_email: str) -> list[dkim.SigningKey]:
    domain = from_email.rpartition("@")[2].strip(">").lower()
    row = (
        SendingDomain.objects.filter(domain=domain, verified_at__isnull=False)
        .order_by(F("account").asc(nulls_first=True))
        .first()
    )
    return domains.signing_keys(row) if row else []


class RelayBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        relay = Relay.objects.usable().filter(accounts__isnull=True).order_by("-weight").first()
        if relay is None:
            fallback = get_connection(
                settings.EMAIL_FALLBACK_BACKEND, fail_silently=self.fail_silently
            )
            return fallback.send_messages(email_messages)
        sent = 0
        try:
            client = relays.connect(relay)
        except (smtplib.SMTPException, OSError) as exc:
            relays.record_failure(relay, str(exc))
            if not self.fail_silently:
                raise
            return 0
        try:
            for message in email_messages:
                sent += self._send(client, message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
        return sent

    def _send(self, client: smtplib.SMTP, message: EmailMessage) -> int:
        recipients = message.recipients()
        if not recipients:
            return 0
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = sanitize_address(message.from_email, encoding)
        data = message.message().as_bytes(linesep="\r\n")
        keys = _keys_for(sender)
        if keys:
            data = dkim.sign(data, keys)
        try:
            client.sendmail(sender, [sanitize_address(r, encoding) for r in recipients], data)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            logger.exception("sending %r failed", message.subject)
            return 0
        return 1
