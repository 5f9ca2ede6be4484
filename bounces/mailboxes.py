"""Poll the bounce mailboxes operators configure, over IMAP or POP3.

Each message is stored through bounces.intake.record_message() first and only then deleted
or moved on the server, so a poller killed mid-run loses nothing. What it had stored but not
yet removed is recognised on the next run by its receipt (a hash of the raw message) and only
removed, so nothing is stored twice. One mailbox is polled by one worker at a time: a lease
row claimed with a conditional update, held for no longer than a poll may take.
"""

from __future__ import annotations

import email.message
import email.parser
import hashlib
import imaplib
import logging
import poplib
import re
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from bounces import intake
from bounces.models import BounceMailbox, MailboxLease, MailboxReceipt
from mailpanel.lib.encryption import InvalidToken

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
# A poll fetches at most this many messages; the next tick takes the rest, so one flooded
# mailbox cannot hold a worker past the lease.
MAX_MESSAGES_PER_POLL = 200
LEASE = timedelta(minutes=10)
# Receipts only bridge a crash between storing and removing; after this they are dead weight.
RECEIPT_KEEP = timedelta(days=30)
# Headers an MTA's local delivery adds with the envelope recipient, most specific first.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To")

# What a broken server, network or stored password raises; recorded on the mailbox.
CONNECTION_ERRORS = (OSError, imaplib.IMAP4.error, poplib.error_proto, InvalidToken, EOFError)


class MailboxError(Exception):
    """The server refused an operation the poll needs (select, fetch, delete, move)."""


@dataclass
class PollResult:
    stored: int = 0
    removed: int = 0
    error: str = ""


def poll_due() -> list[int]:
    """Ids of the enabled mailboxes, for the beat tick to queue one poll task each."""
    return list(BounceMailbox.objects.filter(enabled=True).values_list("id", flat=True))


def poll(mailbox_id: int) -> PollResult | None:
    """Fetch, store and remove the waiting messages of one mailbox.

    Returns None when another worker holds the mailbox (or it is gone or disabled), else
    what was done; a connection or server error is logged and saved in last_error, not raised.
    Any other error (the database, intake) is saved too and then raised.
    """
    holder = _claim(mailbox_id)
    if holder is None:
        return None
    try:
        mailbox = BounceMailbox.objects.get(id=mailbox_id)
        result = PollResult()
        try:
            _poll_with(mailbox, result)
        except (*CONNECTION_ERRORS, MailboxError) as exc:
            logger.warning("bounce mailbox %s: %s", mailbox.name, exc)
            result.error = _describe(exc)
        except Exception as exc:
            _finish(mailbox_id, _describe(exc))
            raise
        _finish(mailbox_id, result.error)
        return result
    finally:
        MailboxLease.objects.filter(mailbox_id=mailbox_id, holder=holder).update(
            expires_at=timezone.now()
        )


def _poll_with(mailbox: BounceMailbox, result: PollResult) -> None:
    if mailbox.protocol == BounceMailbox.Protocol.POP3:
        _poll_pop3(mailbox, result)
    else:
        _poll_imap(mailbox, result)
    MailboxReceipt.objects.filter(
        mailbox=mailbox, stored_at__lt=timezone.now() - RECEIPT_KEEP
    ).delete()


def _claim(mailbox_id: int) -> str | None:
    now = timezone.now()
    holder = uuid.uuid4().hex
    if not BounceMailbox.objects.filter(id=mailbox_id, enabled=True).exists():
        return None
    try:
        with transaction.atomic():
            MailboxLease.objects.get_or_create(mailbox_id=mailbox_id)
    except IntegrityError:
        pass  # created at the same moment by another worker: the update below decides
    claimed = (
        MailboxLease.objects.filter(mailbox_id=mailbox_id)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now))
        .update(holder=holder, expires_at=now + LEASE)
    )
    return holder if claimed == 1 else None


def _finish(mailbox_id: int, error: str) -> None:
    BounceMailbox.objects.filter(id=mailbox_id).update(
        last_polled_at=timezone.now(), last_error=error
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def store(mailbox: BounceMailbox, raw: bytes) -> bool:
    """Store one fetched message unless it was stored before; True if stored now.

    The receipt and the stored message commit together, so after a crash either both exist
    (the message is only removed on the next run) or neither (it is stored again).
    """
    key = hashlib.sha256(raw).hexdigest()
    if MailboxReceipt.objects.filter(mailbox=mailbox, key=key).exists():
        return False
    headers = email.parser.BytesHeaderParser().parsebytes(raw)
    with transaction.atomic():
        intake.record_message(raw, source="mailbox", envelope_recipient=envelope_recipient(headers))
        MailboxReceipt.objects.create(
            mailbox=mailbox,
            key=key,
            message_id=intake.storable(str(headers.get("Message-ID", "")))[:255],
        )
    return True


def envelope_recipient(headers: email.message.Message) -> str:
    for name in ENVELOPE_HEADERS:
        # The first Delivered-To is the one the last hop (our mailbox's server) added.
        value = headers.get(name)
        if value:
            return str(value).strip().strip("<>")[:254]
    return ""


def _tls_context() -> ssl.SSLContext:
    # A private CA (an internal mail server's own) may be named in the settings.
    return ssl.create_default_context(cafile=settings.BOUNCE_MAILBOX_CA_FILE or None)


# IMAP


def _poll_imap(mailbox: BounceMailbox, result: PollResult) -> None:
    conn = _imap_connect(mailbox)
    try:
        _check(conn.select(_quote(mailbox.folder)), "select", mailbox.folder)
        moving = mailbox.after_processing == BounceMailbox.AfterProcessing.MOVE
        if moving:
            _imap_ensure_folder(conn, mailbox.move_to_folder)
        # UNDELETED: a message flagged by a run killed before its EXPUNGE was stored already.
        data = _check(conn.uid("SEARCH", None, "UNDELETED"), "search", mailbox.folder)
        uids = data[0].split()[:MAX_MESSAGES_PER_POLL] if data and data[0] else []
        for uid in uids:
            raw = _imap_fetch(conn, uid)
            if raw is None:
                continue  # expunged by another client in the meantime
            result.stored += store(mailbox, raw)
            if moving:
                _imap_move(conn, uid, mailbox.move_to_folder)
            else:
                _check(conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "delete", uid)
            result.removed += 1
        if uids:
            _check(conn.expunge(), "expunge", mailbox.folder)
    finally:
        _quietly(conn.logout)


def _imap_connect(mailbox: BounceMailbox) -> imaplib.IMAP4:
    if mailbox.security == BounceMailbox.Security.TLS:
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=_tls_context(), timeout=TIMEOUT_SECONDS
        )
    else:
        conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=TIMEOUT_SECONDS)
    try:
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            conn.starttls(ssl_context=_tls_context())
        conn.login(mailbox.username, mailbox.get_password())
        # Servers announce more (MOVE among it) once logged in; imaplib keeps the greeting's.
        data = _check(conn.capability(), "capability", mailbox.host)
        conn.capabilities = tuple(data[-1].decode().upper().split())
    except BaseException:
        _quietly(conn.shutdown)
        raise
    return conn


def _imap_fetch(conn: imaplib.IMAP4, uid: bytes) -> bytes | None:
    # BODY.PEEK: fetching must not mark the message \Seen, in case it stays on the server.
    data = _check(conn.uid("FETCH", uid, "(BODY.PEEK[])"), "fetch", uid)
    for part in data:
        if isinstance(part, tuple) and len(part) == 2:
            return part[1]
    return None


def _imap_move(conn: imaplib.IMAP4, uid: bytes, folder: str) -> None:
    if "MOVE" in conn.capabilities:
        _check(conn.uid("MOVE", uid, _quote(folder)), "move", uid)
        return
    # Without RFC 6851: copy, then flag the original for the EXPUNGE at the end.
    _check(conn.uid("COPY", uid, _quote(folder)), "copy", uid)
    _check(conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "delete", uid)


def _imap_ensure_folder(conn: imaplib.IMAP4, folder: str) -> None:
    if not folder:
        raise MailboxError("after processing is 'move' but no folder to move to is set")
    typ, data = conn.list('""', _quote(folder))
    if typ == "OK" and any(d for d in data if d):
        return
    _check(conn.create(_quote(folder)), "create", folder)


def _quote(name: str) -> str:
    # imaplib sends arguments as they are: a folder name with a space must be a quoted string.
    return '"' + re.sub(r'(["\\])', r"\\\1", name) + '"'


def _check(response: tuple[str, list], operation: str, subject: object) -> list:
    typ, data = response
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise MailboxError(f"{operation} {subject!r} refused: {typ} {detail}".strip())
    return data


# POP3


def _poll_pop3(mailbox: BounceMailbox, result: PollResult) -> None:
    if mailbox.after_processing == BounceMailbox.AfterProcessing.MOVE:
        raise MailboxError("POP3 has no folders: set after processing to 'delete'")
    conn = _pop3_connect(mailbox)
    try:
        _, listing, _ = conn.list()
        numbers = [line.split()[0].decode() for line in listing][:MAX_MESSAGES_PER_POLL]
        for number in numbers:
            _, lines, _ = conn.retr(number)
            result.stored += store(mailbox, b"\r\n".join(lines) + b"\r\n")
            conn.dele(number)
            result.removed += 1
        # DELE takes effect only at QUIT: a run killed before it deletes nothing, and
        # the receipts keep the next run from storing those messages again.
        conn.quit()
    except BaseException:
        _quietly(conn.close)
        raise


def _pop3_connect(mailbox: BounceMailbox) -> poplib.POP3:
    if mailbox.security == BounceMailbox.Security.TLS:
        conn: poplib.POP3 = poplib.POP3_SSL(
            mailbox.host, mailbox.port, context=_tls_context(), timeout=TIMEOUT_SECONDS
        )
    else:
        conn = poplib.POP3(mailbox.host, mailbox.port, timeout=TIMEOUT_SECONDS)
    try:
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            conn.stls(context=_tls_context())
        conn.user(mailbox.username)
        conn.pass_(mailbox.get_password())
    except BaseException:
        _quietly(conn.close)
        raise
    return conn


def _quietly(close: Callable[[], object]) -> None:
    # Closing a connection that already failed must not hide the error that broke it.
    try:
        close()
    except (*CONNECTION_ERRORS, MailboxError):
        pass
