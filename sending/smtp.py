"""SMTP delivery over persistent connections, one per relay per worker process.

A message's outcome is one of: sent (2xx after the final dot), deferred (4xx, or
the connection failed before the message was complete: safe to send again),
failed (5xx for this recipient), unknown (the connection died after the final dot
and before the reply, RFC 1047: the relay may have accepted it; never resent).
With PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write.
"""

from __future__ import annotations

import logging
import re
import smtplib
from dataclasses import dataclass

from sending import relays
from sending.models import Relay

logger = logging.getLogger(__name__)

SENT, DEFERRED, FAILED, UNKNOWN = "sent", "deferred", "failed", "unknown"
_LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class Outcome:
    status: str
    code: int | None = None
    response: str = ""


def _outcome(code: int, response: bytes | str) -> Outcome:
    text = response.decode("utf-8", "replace") if isinstance(response, bytes) else response
    if 200 <= code < 300:
        return Outcome(SENT, code, text)
    if 400 <= code < 500:
        return Outcome(DEFERRED, code, text)
    return Outcome(FAILED, code, text)


class Connection:
    """One open, authenticated session with a relay, reused for many messages."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.client = relays.connect(relay)
        self.pipelining = self.client.has_extn("pipelining")

    def close(self) -> None:
        try:
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()

    def _envelope(self, sender: str, recipient: str) -> Outcome | None:
        """MAIL, RCPT, DATA; None when the relay is ready for the message."""
        client = self.client
        if self.pipelining:
            client.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
            replies = [client.getreply() for _ in range(3)]
        else:
            replies = [client.mail(sender)]
            if replies[0][0] == 250:
                replies.append(client.rcpt(recipient))
                if replies[1][0] in (250, 251):
                    replies.append(client.docmd("DATA"))
        if len(replies) == 3 and replies[2][0] == 354:
            if replies[0][0] == 250 and replies[1][0] in (250, 251):
                return None
            # A relay must not accept DATA without a recipient; end it harmlessly if it did.
            client.send(b".\r\n")
            client.getreply()
        bad = next((r for r in replies if r[0] not in (250, 251, 354)), replies[-1])
        client.rset()
        return _outcome(*bad)

    def send(self, sender: str, recipient: str, message: bytes) -> Outcome:
        if not recipient.isascii():
            # Internationalised local parts need SMTPUTF8, which this engine does not speak.
            return Outcome(FAILED, None, "the address needs SMTPUTF8 (non-ASCII local part)")
        try:
            refused = self._envelope(sender, recipient)
            if refused is not None:
                return refused
            # Dot-stuffing (RFC 5321 4.5.2); the search first, as most messages need none.
            payload = _LEADING_DOT.sub(b"..", message) if b"\n." in message else message
            if not payload.endswith(b"\r\n"):
                payload += b"\r\n"
            self.client.send(payload + b".\r\n")
        except (smtplib.SMTPException, OSError) as exc:
            # The message was not complete: the relay cannot have accepted it.
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc
        try:
            code, response = self.client.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            return Outcome(UNKNOWN, None, f"connection lost after the message: {exc}")
        return _outcome(code, response)


class ConnectionLost(Exception):
    """The connection failed before a message was complete; it may be sent again."""


def _key(relay: Relay) -> tuple:
    # An operator's edit of a relay (host, port, security, login) means a new connection.
    return (relay.id, relay.host, relay.port, relay.security, relay.username)


class Pool:
    """Open connections of this process, by relay."""

    def __init__(self) -> None:
        self.connections: dict[tuple, Connection] = {}

    def get(self, relay: Relay) -> Connection:
        connection = self.connections.get(_key(relay))
        if connection is None:
            connection = Connection(relay)
            self.connections[_key(relay)] = connection
        return connection

    def discard(self, relay: Relay) -> None:
        connection = self.connections.pop(_key(relay), None)
        if connection is not None:
            connection.close()

    def close_all(self) -> None:
        for key in list(self.connections):
            self.connections.pop(key).close()


# One pool per worker process: connections outlive a batch, so the next batch reuses them.
pool = Pool()
