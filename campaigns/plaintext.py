"""HTML to a readable plain-text part: paragraphs, line breaks, lists, and links
written as "text (url)". Hidden elements (the preheader) and style/script are left out."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {
    "p",
    "div",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "hr",
    "pre",
}
_SKIP = {"style", "script", "head", "title"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.stack: list[tuple[str, bool]] = []
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _VOID:
            if tag == "br":
                self.out.append("\n")
            elif tag == "hr":
                self.out.append("\n\n----------\n\n")
            elif tag == "img" and not self.skip_depth and (attributes.get("alt") or "").strip():
                self.out.append(attributes["alt"] or "")
            return
        hidden = tag in _SKIP or bool(_HIDDEN.search(attributes.get("style") or ""))
        self.stack.append((tag, hidden))
        if hidden:
            self.skip_depth += 1
            return
        if tag in _BLOCK:
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "td":
            self.out.append(" ")
        if tag == "a":
            self.links.append(attributes.get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        while self.stack:
            open_tag, hidden = self.stack.pop()
            if hidden:
                self.skip_depth -= 1
            elif open_tag == "a" and self.links:
                self._close_link()
            elif open_tag in _BLOCK:
                self.out.append("\n\n")
            if open_tag == tag:
                break

    def _close_link(self) -> None:
        href = self.links.pop()
        if href and not href.startswith(("#", "mailto:")):
            self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    converter = _Converter()
    converter.feed(source)
    converter.close()
    text = "".join(converter.out)
    lines = [line.strip() for line in text.splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
