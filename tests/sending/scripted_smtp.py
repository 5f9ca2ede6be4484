"""An aiosmtpd server whose answers a test scripts per recipient address."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.services import ReceivedMessage, free_port


@dataclass
class ScriptedHandler:
    # address -> list of answers for DATA, used in turn ("250", "451 ...", "550 ...", "drop")
    script: dict[str, list[str]] = field(default_factory=dict)
    messages: list[ReceivedMessage] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)
    # address -> the answer to its RCPT TO (default "250 OK")
    rcpt_script: dict[str, str] = field(default_factory=dict)
    # Real relays (Postfix, smtp-sink) advertise PIPELINING; aiosmtpd reads pipelined
    # commands fine but does not say so unless told.
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201, N802
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        answer = self.rcpt_script.get(address, "250 OK")
        if answer.startswith("2"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        address = envelope.rcpt_tos[0]
        self.attempts[address] += 1
        answers = self.script.get(address, [])
        answer = answers.pop(0) if answers else "250 OK"
        if answer == "drop":
            # The message arrived whole, but the answer never leaves (RFC 1047).
            self.messages.append(
                ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
            server.transport.close()
            return "250 OK"
        if answer.startswith("2"):
            self.messages.append(
                ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
        return answer


def start(
    script: dict[str, list[str]] | None = None,
    rcpt_script: dict[str, str] | None = None,
    pipelining: bool = True,
) -> tuple[Controller, ScriptedHandler, int]:
    handler = ScriptedHandler(script or {}, rcpt_script=rcpt_script or {}, pipelining=pipelining)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler, port
