"""SMTP delivery over persistent connections, one per relay per worker process, each
holding one of the relay's connection slots (sending.slots) while it is open.

A message's outcome is one of: sent (2xx after the final dot), deferred (4xx, or
the connection failed before the message was complete: safe to send again),
failed (5xx for this recipient), unknown (the connection died after the final dot
and before the reply, RFC 1047: the relay may have accepted it; never resent).
With PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

from sending import relays, slots
from sending.models import Relay

logger = logging.getLogger(__name__)

SENT, DEFERRED, FAILED, UNKNOWN = "sent", "deferred", "failed", "unknown"
Key = Hashable
# (key, envelope sender, recipient, message bytes or a function that builds them)
Item = tuple[Key, str, str, "bytes | Callable[[], bytes]"]


@dataclass(frozen=True)
class Outcome:
    status: str
    code: int | None = None
    response: str = ""


# The commands of an envelope, in the order their replies come back.
ENVELOPE_COMMANDS = ("MAIL FROM", "RCPT TO", "DATA")


def _outcome(code: int, response: bytes | str, command: str = "") -> Outcome:
    text = response.decode("utf-8", "replace") if isinstance(response, bytes) else response
    if 200 <= code < 300:
        return Outcome(SENT, code, text)
    if command:
        # Said the way Postfix says it, for the bounce classifier (bounces.classify.smtp_phase)
        # and for the owner reading the reply: a refusal at RCPT TO is about the address, one
        # at the end of DATA is a filter's, one at MAIL FROM is about the sender.
        text = f"{text} (in reply to {command} command)"
    if 400 <= code < 500:
        return Outcome(DEFERRED, code, text)
    return Outcome(FAILED, code, text)


SEND_BUFFER_BYTES = 512 * 1024
NEEDS_SMTPUTF8 = Outcome(FAILED, None, "the address needs SMTPUTF8 (non-ASCII local part)")


class Connection:
    """One open, authenticated session with a relay, reused for many messages."""

    def __init__(self, relay: Relay, slot: slots.Slot | None = None) -> None:
        self.relay = relay
        self.client = relays.connect(relay)
        self.pipelining = self.client.has_extn("pipelining")
        self.usable = True
        # Given back when the connection closes (None: not counted, e.g. a test send).
        self.slot = slot
        # Each write is a whole group of commands: nothing to gain from Nagle's
        # algorithm holding back its last segment until the previous one is acknowledged.
        self.client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Room for a whole message and the next envelope in the kernel, so the write
        # returns at once and the next message is built while the relay reads this one.
        self.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)

    def close(self) -> None:
        try:
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()
        finally:
            if self.slot is not None:
                self.slot.release()
                self.slot = None

    def send(self, sender: str, recipient: str, message: bytes) -> Outcome:
        """One message. Raises ConnectionLost when it may be sent again elsewhere."""
        try:
            return next(self.send_many([(None, sender, recipient, message)]))[1]
        except ConnectionLost as exc:
            if exc.unknown:
                return exc.unknown[0][1]
            raise

    def send_many(self, messages: Iterable[Item]) -> Iterator[tuple[Key, Outcome]]:
        """Sends (key, sender, recipient, message) items in order; yields each key's
        outcome as soon as the relay has answered for it.

        With PIPELINING (RFC 2920) a message's content, its final dot and the next
        message's MAIL, RCPT and DATA leave in one write, and their replies are read
        together: one round trip per message instead of two. A message given as a
        function is built after that write, while the relay takes in the previous one,
        so building and the round trip overlap instead of adding up.

        If the connection fails, ConnectionLost is raised; it carries the items taken
        but not finished (``unsent``: safe to send again) and the message caught in the
        RFC 1047 window (``unknown``: never to be sent again).
        """
        if not self.pipelining:
            yield from self._send_one_by_one(messages)
            return
        client = self.client
        pending: Item | None = None  # accepted for DATA (354), content not yet written
        reset = b""  # RSET owed after a refused envelope, sent with the next write
        for item in messages:
            key, sender, recipient, _ = item
            if not recipient.isascii():
                yield key, NEEDS_SMTPUTF8
                continue
            out = reset + _envelope(sender, recipient)
            if pending is not None:
                out = _payload(pending[3]) + out
            try:
                client.send(out)
            except (smtplib.SMTPException, OSError) as exc:
                raise ConnectionLost(str(exc), unsent=[i for i in (pending, item) if i]) from exc
            try:
                item = _built(item)
            except BaseException:
                # Replies are owed on this session: nothing else may use it.
                self.usable = False
                self.client.close()
                raise
            if pending is not None:
                final = self._final_reply(pending, unsent=[item])
                yield pending[0], final
                pending = None
            try:
                if reset:
                    client.getreply()
                replies = [client.getreply() for _ in range(3)]
            except (smtplib.SMTPException, OSError) as exc:
                raise ConnectionLost(str(exc), unsent=[item]) from exc
            refused, reset = _refusal(replies)
            if refused is None:
                pending = item
                continue
            if replies[2][0] == 354:
                # A relay must not accept DATA without a recipient; end it harmlessly.
                client.send(b".\r\n")
                client.getreply()
            yield key, refused
        if pending is not None:
            try:
                client.send(_payload(pending[3]))
            except (smtplib.SMTPException, OSError) as exc:
                raise ConnectionLost(str(exc), unsent=[pending]) from exc
            yield pending[0], self._final_reply(pending, unsent=[])
        if reset:
            # Leave the session clean for the next batch.
            client.rset()

    def _final_reply(self, item: Item, unsent: list[Item]) -> Outcome:
        try:
            code, response = self.client.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            lost = Outcome(UNKNOWN, None, f"connection lost after the message: {exc}")
            raise ConnectionLost(str(exc), unsent=unsent, unknown=[(item[0], lost)]) from exc
        return _outcome(code, response, "end of DATA")

    def _send_one_by_one(self, messages: Iterable[Item]) -> Iterator[tuple[Key, Outcome]]:
        client = self.client
        for item in messages:
            key, sender, recipient, _ = item
            if not recipient.isascii():
                yield key, NEEDS_SMTPUTF8
                continue
            item = _built(item)
            data = item[3]
            try:
                replies = [client.mail(sender)]
                if replies[0][0] == 250:
                    replies.append(client.rcpt(recipient))
                    if replies[1][0] in (250, 251):
                        replies.append(client.docmd("DATA"))
                refused, _ = _refusal(replies)
                if refused is None:
                    client.send(_payload(data))
            except (smtplib.SMTPException, OSError) as exc:
                # The message was not complete: the relay cannot have accepted it.
                raise ConnectionLost(str(exc) or type(exc).__name__, unsent=[item]) from exc
            if refused is None:
                yield key, self._final_reply(item, unsent=[])
                continue
            yield key, refused
            try:
                client.rset()
            except (smtplib.SMTPException, OSError) as exc:
                raise ConnectionLost(str(exc) or type(exc).__name__) from exc


def _built(item: Item) -> Item:
    key, sender, recipient, data = item
    return item if isinstance(data, bytes) else (key, sender, recipient, data())


def _envelope(sender: str, recipient: str) -> bytes:
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()


def _payload(message: bytes) -> bytes:
    """The message as it goes after DATA: dot-stuffed (RFC 5321 4.5.2), with the final dot.

    Messages come from sending.message with CRLF line ends only (its tests hold it to
    that), so a plain replace finds every line that starts with a dot: several times
    cheaper than a multi-line regular expression over 30 KB per message."""
    payload = message.replace(b"\r\n.", b"\r\n..") if b"\n." in message else message
    if payload.startswith(b"."):
        payload = b"." + payload
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return payload + b".\r\n"


def _refusal(replies: list[tuple[int, bytes]]) -> tuple[Outcome | None, bytes]:
    """The outcome of a refused envelope (None if the relay waits for the content),
    and the RSET the session then needs."""
    accepted = len(replies) == 3 and replies[0][0] == 250 and replies[1][0] in (250, 251)
    if accepted and replies[2][0] == 354:
        return None, b""
    index = next(
        (i for i, r in enumerate(replies) if r[0] not in (250, 251, 354)), len(replies) - 1
    )
    code, response = replies[index]
    return _outcome(code, response, ENVELOPE_COMMANDS[index]), b"RSET\r\n"


class ConnectionLost(Exception):
    """The connection failed. ``unsent`` items were not complete and may be sent again;
    ``unknown`` holds the outcome of a message lost in the RFC 1047 window."""

    def __init__(
        self,
        message: str,
        unsent: list[Item] | None = None,
        unknown: list[tuple[Key, Outcome]] | None = None,
    ) -> None:
        super().__init__(message or "connection lost")
        self.unsent = unsent or []
        self.unknown = unknown or []


def _key(relay: Relay) -> tuple:
    # An operator's edit of a relay (host, port, security, login) means a new connection.
    return (relay.id, relay.host, relay.port, relay.security, relay.username)


class Pool:
    """Open connections of this process, by relay, each with its connection slot."""

    def __init__(self) -> None:
        self.connections: dict[tuple, Connection] = {}

    def get(self, relay: Relay) -> Connection:
        """This process's connection to the relay, opened if needed.

        Raises slots.NoSlot when opening one would pass the relay's connection limit,
        and what relays.connect raises when the relay cannot be reached."""
        connection = self.connections.get(_key(relay))
        if connection is not None and connection.usable and self._keep(connection):
            return connection
        self.discard(relay)
        slot = slots.acquire(relay)
        try:
            connection = Connection(relay, slot)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        self.connections[_key(relay)] = connection
        return connection

    @staticmethod
    def _keep(connection: Connection) -> bool:
        if connection.slot is None or connection.slot.keep():
            return True
        # Its slot ran out and another process may hold it now: this one must go.
        connection.usable = False
        return False

    def keep_slots(self) -> None:
        """Renews the slots of the open connections that are due (a clock read each
        otherwise); a connection whose slot is lost becomes unusable."""
        for connection in self.connections.values():
            if connection.usable:
                self._keep(connection)

    def discard(self, relay: Relay) -> None:
        connection = self.connections.pop(_key(relay), None)
        if connection is not None:
            connection.close()

    def close_all(self) -> None:
        for key in list(self.connections):
            self.connections.pop(key).close()


# One pool per worker process. Its connections live for a batch: closed at the batch's
# end, so a process between batches holds none of a relay's connection slots.
pool = Pool()
