"""A campaign's body in its four formats, turned into HTML, and conversions between
formats when the owner switches editor."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import markdown
import nh3

from campaigns.plaintext import html_to_text

# What the rich-text editor may produce: e-mail-safe tags and attributes only.
EDITOR_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "figure",
    "figcaption",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
EDITOR_ATTRIBUTES = {
    "*": {"style", "class", "align"},
    "a": {"href", "title", "target"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "width"},
    "th": {"colspan", "rowspan", "width"},
    "table": {"width", "cellpadding", "cellspacing", "border"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}

# Merge tags are shielded from HTML tools (which would percent-encode or move them)
# by replacing them with inert words and putting them back afterwards.
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"mptag(\d+)x")


def protect(source: str) -> tuple[str, Callable[[str], str]]:
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"mptag{len(tags) - 1}x"

    shielded = _TAG.sub(hide, source)

    def restore(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: tags[int(m.group(1))], text)

    return shielded, restore


def clean_editor_html(source: str) -> str:
    """The editor's output reduced to e-mail-safe tags and attributes."""
    shielded, restore = protect(source)
    cleaned = nh3.clean(
        shielded,
        tags=EDITOR_TAGS,
        attributes=EDITOR_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )
    return restore(cleaned)


def markdown_to_html(source: str) -> str:
    shielded, restore = protect(source)
    return restore(markdown.markdown(shielded, extensions=["extra", "sane_lists"]))


def text_to_html(source: str) -> str:
    shielded, restore = protect(source)
    paragraphs = re.split(r"\n\s*\n", shielded.strip())
    rendered = [
        "<p>" + html.escape(p, quote=False).replace("\n", "<br>\n") + "</p>" for p in paragraphs
    ]
    return restore("\n".join(rendered))


def body_html(body: str, body_format: str) -> str:
    """The body as an HTML fragment, ready to go into the design template."""
    if body_format == "wysiwyg":
        return clean_editor_html(body)
    if body_format == "markdown":
        return markdown_to_html(body)
    if body_format == "text":
        return text_to_html(body)
    return body


def convert(body: str, old: str, new: str) -> str:
    """The body rewritten for another editor, keeping the content where it can."""
    if old == new or not body:
        return body
    if new in ("wysiwyg", "html"):
        converted = body_html(body, old)
        return clean_editor_html(converted) if new == "wysiwyg" else converted
    if new == "text":
        return html_to_text(body_html(body, old))
    # To Markdown: plain text is valid Markdown; HTML is kept as written (Markdown allows it).
    if old == "text":
        return body
    return body_html(body, old)
