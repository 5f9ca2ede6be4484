"""How each recipient's message is encoded: 7bit where it can be, base64 otherwise."""

from __future__ import annotations

import email
import email.policy
import html

import pytest

from sending import smtp
from sending.message import MessageFactory, Recipient


def build(text: str, body_html: str) -> email.message.EmailMessage:
    factory = MessageFactory(
        campaign_id=1, campaign_uuid="0" * 32, account_id=1, from_name="News",
        from_email="news@example.com", reply_to="", attachments=[], signing_keys=[],
        unsubscribe_mailto="unsubscribe@example.com",
    )  # fmt: skip
    raw = factory.build(
        Recipient(
            delivery_id=7,
            email="ann@example.org",
            name="Ann",
            subject="Hi",
            html=body_html,
            text=text,
            unsubscribe_url="https://mail.example.com/u/x",
            list_id_header="<l.x>",
        )  # fmt: skip
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    return email.message_from_bytes(raw, policy=email.policy.default)


def parts(message: email.message.EmailMessage) -> dict[str, email.message.EmailMessage]:
    return {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}


def test_ascii_parts_travel_as_7bit_with_crlf_lines() -> None:
    found = parts(build("Hello Ann\nSee you", "<p>Hello</p>\n<p>Ann</p>"))
    assert found["text/plain"]["Content-Transfer-Encoding"] == "7bit"
    assert found["text/html"]["Content-Transfer-Encoding"] == "7bit"
    assert found["text/plain"].get_content().splitlines() == ["Hello Ann", "See you"]
    assert found["text/html"].get_content().splitlines() == ["<p>Hello</p>", "<p>Ann</p>"]


def test_non_ascii_html_becomes_character_references_and_reads_the_same() -> None:
    body = "<p>Grüße · 東京 🎉</p>"
    part = parts(build("x", body))["text/html"]
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert "&#" in part.get_content()
    assert html.unescape(part.get_content()).strip() == body


def test_non_ascii_inside_style_keeps_the_characters_in_base64() -> None:
    # A character reference is not decoded inside <style>: the CSS would change.
    body = '<style>p { font-family: "微软雅黑"; }</style><p>x</p>'
    part = parts(build("x", body))["text/html"]
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content().strip() == body


@pytest.mark.parametrize(
    ("text", "why"),
    [("Grüße aus Köln", "non-ASCII text"), ("a" * 999, "a line over 998 octets")],
)
def test_text_that_7bit_cannot_carry_is_base64(text: str, why: str) -> None:
    part = parts(build(text, "<p>x</p>"))["text/plain"]
    assert part["Content-Transfer-Encoding"] == "base64", why
    assert part.get_content().strip() == text


def test_a_long_html_line_is_base64() -> None:
    body = "<p>" + "word " * 300 + "</p>"
    part = parts(build("x", body))["text/html"]
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content().strip() == body


@pytest.mark.parametrize(
    ("message", "on_the_wire"),
    [
        (b".a\r\nb\r\n.c\r\n", b"..a\r\nb\r\n..c\r\n.\r\n"),
        (b"a\r\n..b", b"a\r\n...b\r\n.\r\n"),
        (b"plain\r\n", b"plain\r\n.\r\n"),
    ],
)
def test_lines_starting_with_a_dot_are_stuffed(message: bytes, on_the_wire: bytes) -> None:
    assert smtp._payload(message) == on_the_wire


def test_list_unsubscribe_holds_the_url_and_a_mailto_uri() -> None:
    # RFC 2369: each entry is a URI in angle brackets, so the address needs mailto:.
    message = build("x", "<p>x</p>")
    assert message["List-Unsubscribe"] == (
        "<https://mail.example.com/u/x>, <mailto:unsubscribe@example.com>"
    )
