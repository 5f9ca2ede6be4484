"""Message assembly: everything that is the same for every recipient is prepared
once per campaign (headers, MIME skeleton, encoded attachments, DKIM keys); per
recipient only a few headers and the two merged parts are encoded and joined.

Building the same message with the ``email`` package costs about 1 to 3 ms; joining
prepared bytes costs a few tens of microseconds.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import time
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from urllib.parse import urlsplit

from django.conf import settings

from sending import dkim


def _header_value(value: str) -> str:
    """A header value on one line, RFC 2047-encoded when it is not plain ASCII."""
    value = " ".join(value.splitlines())  # no merge value may start a new header line
    try:
        value.encode("ascii")
    except UnicodeEncodeError:
        return Header(value, "utf-8").encode(maxlinelen=900)
    return value


def _body(text: str) -> tuple[bytes, bytes]:
    """A text or HTML part as (Content-Transfer-Encoding, encoded body).

    ASCII with lines of at most 998 octets goes as 7bit, unchanged but for CRLF line
    ends: no encoding cost, a quarter fewer bytes, far fewer lines for every relay
    to handle, and it needs no 8BITMIME on any hop (so no downgrade breaks the DKIM
    signature). Spam filters also look askance at base64 text (SpamAssassin's
    MIME_BASE64_TEXT). Anything else is base64.
    """
    if text.isascii():
        unix = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
        if max(map(len, unix.split("\n"))) <= MAX_LINE:
            body = unix.replace("\n", "\r\n").encode("ascii")
            return b"7bit", body if body.endswith(b"\r\n") else body + b"\r\n"
    return b"base64", _base64(text)


# RFC 5321 4.5.3.1.6: 1000 octets per line with the CRLF; 998 leaves room for it.
MAX_LINE = 998
# Where a character reference is not decoded, so non-ASCII must stay as it is.
_RAW_TEXT = re.compile(r"<(style|script)\b[^>]*>(.*?)</\1", re.IGNORECASE | re.DOTALL)


def _html_body(html: str) -> tuple[bytes, bytes]:
    """The HTML part: non-ASCII characters become character references (&#183;), which
    every HTML reader decodes back, so the part can travel as 7bit."""
    if not html.isascii() and all(m.group(2).isascii() for m in _RAW_TEXT.finditer(html)):
        html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return _body(html)


def _base64(text: str) -> bytes:
    # Base64 rather than quoted-printable: about twenty times cheaper per message, and
    # its lines never start with a dot or pass 76 characters. CRLF for SMTP and DKIM.
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


@dataclass
class Recipient:
    delivery_id: int
    email: str
    name: str
    subject: str
    html: str
    text: str
    unsubscribe_url: str
    list_id_header: str
    # Set for mail without a Delivery row (test sends); else made from delivery_id.
    message_id: str = ""


class MessageFactory:
    """Builds the bytes of each recipient's message for one frozen campaign."""

    def __init__(
        self,
        *,
        campaign_id: int,
        campaign_uuid: str,
        account_id: int,
        from_name: str,
        from_email: str,
        reply_to: str,
        attachments: list[bytes],
        signing_keys: list[dkim.SigningKey],
        unsubscribe_mailto: str,
        test: bool = False,
    ) -> None:
        self.campaign_uuid = campaign_uuid
        self.domain = from_email.rpartition("@")[2] or "localhost"
        self.keys = signing_keys
        # RFC 2369: a URL in angle brackets, so a bare address needs its mailto: scheme.
        if unsubscribe_mailto and not unsubscribe_mailto.lower().startswith("mailto:"):
            unsubscribe_mailto = f"mailto:{unsubscribe_mailto}"
        self.unsubscribe_mailto = unsubscribe_mailto
        token = hashlib.sha256(campaign_uuid.encode()).hexdigest()[:24]
        self.boundary_alt = f"=_alt_{token}".encode()
        self.boundary_mixed = f"=_mix_{token}".encode()
        self.attachments = attachments
        common = [
            f"From: {_header_value(formataddr((from_name, from_email)))}",
            *([f"Reply-To: {reply_to}"] if reply_to else []),
            "MIME-Version: 1.0",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            f"Feedback-ID: {campaign_id}:{account_id}:mailpanel",
            f"X-Mailpanel-Campaign: {campaign_uuid}",
            # A test send: the same message as the real one, but no statistics count it.
            *(["X-Mailpanel-Test: yes"] if test else []),
        ]
        self.common = ("\r\n".join(common) + "\r\n").encode()
        self._date = (0, "")

    def _date_header(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, localtime=False))
        return self._date[1]

    def message_id(self, delivery_id: int) -> str:
        # Deterministic: a retry of the same delivery carries the same Message-ID, and a
        # bounce that lost its VERP address can still be traced through it.
        return f"<{self.campaign_uuid}.{delivery_id}@{self.domain}>"

    def build(self, r: Recipient) -> bytes:
        unsubscribe = f"<{r.unsubscribe_url}>" if r.unsubscribe_url else ""
        if self.unsubscribe_mailto:
            unsubscribe += f"{', ' if unsubscribe else ''}<{self.unsubscribe_mailto}>"
        head = (
            f"To: {_header_value(formataddr((r.name, r.email)))}\r\n"
            f"Subject: {_header_value(r.subject)}\r\n"
            f"Date: {self._date_header()}\r\n"
            f"Message-ID: {r.message_id or self.message_id(r.delivery_id)}\r\n"
            f"List-Id: {r.list_id_header}\r\n"
            f"List-Unsubscribe: {unsubscribe}\r\n"
        ).encode() + self.common
        alt = self.boundary_alt
        text_encoding, text = _body(r.text)
        html_encoding, html = _html_body(r.html)
        alternative = b"".join(
            (
                b"--", alt, b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: ", text_encoding, b"\r\n\r\n", text,
                b"\r\n--", alt, b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: ", html_encoding, b"\r\n\r\n", html,
                b"\r\n--", alt, b"--\r\n",
            )
        )  # fmt: skip
        if self.attachments:
            mixed = self.boundary_mixed
            parts = [b"--" + mixed + b"\r\nContent-Type: multipart/alternative; boundary=\""
                     + alt + b"\"\r\n\r\n" + alternative]  # fmt: skip
            parts += [b"--" + mixed + b"\r\n" + part.rstrip(b"\r\n") + b"\r\n"
                      for part in self.attachments]  # fmt: skip
            body = b"".join(parts) + b"--" + mixed + b"--\r\n"
            content_type = b'Content-Type: multipart/mixed; boundary="' + mixed + b'"\r\n'
        else:
            body = alternative
            content_type = b'Content-Type: multipart/alternative; boundary="' + alt + b'"\r\n'
        message = head + content_type + b"\r\n" + body
        return dkim.sign(message, self.keys) if self.keys else message


def list_id_header(list_name: str, list_uuid: str) -> str:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    name = " ".join(list_name.replace('"', "").splitlines())
    return f'"{_header_value(name)}" <{list_uuid}.list-id.{host}>'
