"""A small LMTP/SMTP server that stores every message it accepts as a returned message.

Put it behind the MTA that receives mail for the bounce domain (Postfix: ``transport_maps``
with ``lmtp:inet:127.0.0.1:2525``). With LMTP, each RCPT TO gets its own reply after DATA,
so one failed recipient does not make the MTA resend the message to the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from asgiref.sync import sync_to_async
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.utils import timezone

from bounces import intake
from bounces.models import ReceiverReceipt, Source

logger = logging.getLogger(__name__)

# A bounce larger than this is not one we need whole; the parser reads at most 2 MB.
MAX_MESSAGE_SIZE = 10 * 1024 * 1024
OK = "250 2.0.0 stored"
TEMPFAIL = "451 4.3.0 not stored, try again later"
# MTAs give up on a queued message after a few days: receipts older than that serve nobody.
RECEIPT_KEEP = timedelta(days=7)


def store(raw: bytes, recipient: str) -> str:
    """Stores the message for one recipient unless it was stored before; returns the reply.

    SMTP has one reply for all recipients, so a failure for one makes the client resend the
    message to every one: a receipt, committed with the stored message, skips the others.
    """
    close_old_connections()  # a long-lived server outlives database connections
    key = hashlib.sha256(recipient.encode("utf-8", "surrogateescape") + b"\n" + raw).hexdigest()
    try:
        if ReceiverReceipt.objects.filter(key=key).exists():
            return OK
        with transaction.atomic():
            intake.record_message(raw, source=Source.LMTP, envelope_recipient=recipient)
            ReceiverReceipt.objects.create(key=key)
        ReceiverReceipt.objects.filter(stored_at__lt=timezone.now() - RECEIPT_KEEP).delete()
    except IntegrityError:
        return OK  # the same resend stored at the same moment by another connection
    except DatabaseError as exc:
        logger.error("bounce for %s not stored: %s", recipient, exc)
        return TEMPFAIL
    return OK


class Handler:
    # Database work runs in a worker thread: the event loop keeps serving other clients.
    _store = staticmethod(sync_to_async(store, thread_sensitive=False))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        replies = [await self._store(raw, rcpt) for rcpt in envelope.rcpt_tos]
        if isinstance(server, LMTP):
            # aiosmtpd has no per-recipient hook and writes the status as given: one line per
            # recipient, in RCPT order, is the LMTP reply (RFC 2033, section 4.2).
            return "\r\n".join(replies)
        return TEMPFAIL if TEMPFAIL in replies else OK


def serve(host: str, port: int, *, lmtp: bool) -> None:
    """Runs the server until interrupted."""
    protocol = LMTP if lmtp else SMTP
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: protocol(
                Handler(), data_size_limit=MAX_MESSAGE_SIZE, decode_data=False, enable_SMTPUTF8=True
            ),
            host=host,
            port=port,
        )
    )
    logger.info("bounce receiver (%s) on %s:%s", "LMTP" if lmtp else "SMTP", host, port)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
