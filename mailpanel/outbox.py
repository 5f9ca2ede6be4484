"""The local outbox: a small SMTP server that keeps every message it receives.

It is where mail goes on the embedded default, so a newcomer can read what
mailpanel sends without a real relay. Messages are stored in a Maildir under
``var/outbox`` (any mail client can open it too), with the SMTP envelope kept
in ``X-MailFrom`` / ``X-RcptTo`` headers as aiosmtpd's Mailbox handler writes them.
"""

from __future__ import annotations

import email.policy
import logging
import mailbox
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from django.conf import settings

logger = logging.getLogger(__name__)

# Maildir keys are "<time>.<unique>.<host>"; anything else is not a key we made.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._\-]{1,200}$")
SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")


def outbox_dir() -> Path:
    return Path(settings.OUTBOX_DIR)


def open_maildir() -> mailbox.Maildir:
    # Maildir(create=True) creates nothing inside a folder that exists already.
    for sub in ("tmp", "new", "cur"):
        (outbox_dir() / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(outbox_dir(), create=True)


@dataclass
class OutboxSummary:
    key: str
    received_at: datetime
    sender: str
    recipients: str
    subject: str
    size: int


@dataclass
class OutboxMessage:
    key: str
    received_at: datetime
    headers: list[tuple[str, str]]
    envelope_from: str
    envelope_to: str
    subject: str
    html: str | None
    text: str | None
    attachments: list[tuple[str, str, int]] = field(default_factory=list)
    raw: str = ""


def _parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(data)  # type: ignore[return-value]


def _path_of(key: str) -> Path | None:
    box = outbox_dir()
    for sub in ("new", "cur"):
        for path in (box / sub).iterdir() if (box / sub).is_dir() else ():
            # In cur/ a key carries a ":2,<flags>" suffix.
            if path.name == key or path.name.startswith(key + ":"):
                return path
    return None


def list_paths() -> list[Path]:
    """Returns the paths of every stored message, newest first."""
    box = outbox_dir()
    paths = [p for sub in ("new", "cur") for p in (box / sub).glob("*") if p.is_file()]
    paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return paths


def summarize(paths: list[Path]) -> list[OutboxSummary]:
    """Reads the headers of the given messages (not their bodies) for a list page."""
    summaries = []
    for path in paths:
        with path.open("rb") as fh:
            msg = BytesParser(policy=email.policy.default).parse(fh, headersonly=True)
        stat = path.stat()
        summaries.append(
            OutboxSummary(
                key=path.name.split(":", 1)[0],
                received_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                sender=str(msg.get("From", msg.get("X-MailFrom", ""))),
                recipients=str(msg.get("X-RcptTo", msg.get("To", ""))),
                subject=str(msg.get("Subject", "")),
                size=stat.st_size,
            )
        )
    return summaries


def get_message(key: str) -> OutboxMessage | None:
    """Returns one message with its parts, or None if there is no such key."""
    if not KEY_PATTERN.match(key):
        return None
    path = _path_of(key)
    if path is None:
        return None
    data = path.read_bytes()
    msg = _parse(data)
    html_part = msg.get_body(preferencelist=("html",))
    text_part = msg.get_body(preferencelist=("plain",))
    attachments = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        attachments.append(
            (part.get_filename() or "(unnamed)", part.get_content_type(), len(payload))
        )
    return OutboxMessage(
        key=key,
        received_at=datetime.fromtimestamp(path.stat().st_mtime, tz=UTC),
        headers=[(name, str(value)) for name, value in msg.items()],
        envelope_from=str(msg.get("X-MailFrom", "")),
        envelope_to=str(msg.get("X-RcptTo", "")),
        subject=str(msg.get("Subject", "")),
        html=html_part.get_content() if html_part is not None else None,
        text=text_part.get_content() if text_part is not None else None,
        attachments=attachments,
        raw=data.decode("utf-8", errors="replace"),
    )


def delete_all() -> int:
    """Empties the outbox; returns how many messages were removed."""
    box = open_maildir()
    keys = list(box.keys())
    for key in keys:
        box.discard(key)
    return len(keys)


def prune(older_than: timedelta) -> int:
    """Removes messages received before ``now - older_than``; returns how many."""
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    box = outbox_dir()
    for sub in ("new", "cur"):
        for path in (box / sub).glob("*"):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def make_controller(host: str, port: int) -> Controller:
    """An aiosmtpd controller storing every message into the outbox Maildir."""
    open_maildir()
    # Large messages (attachments) are normal here: allow 50 MB like common relays.
    return Controller(
        Mailbox(str(outbox_dir())), hostname=host, port=port, data_size_limit=50 * 1024 * 1024
    )
