"""Design templates: the shipped starting layouts and copying them into an account."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from django.db import transaction

from campaigns import merge
from campaigns.models import EmailTemplate

STARTING_DIR = Path(__file__).resolve().parent / "starting_templates"
STARTING = {
    "plain": "Plain",
    "newsletter": "Newsletter with header and footer",
    "announcement": "Announcement",
}
CONTENT = re.compile(r"\{\{\s*content\s*\}\}")
PREHEADER = re.compile(r"\{\{\s*preheader\s*\}\}")


@cache
def starting_html(key: str) -> str:
    if key not in STARTING:
        raise KeyError(key)
    return (STARTING_DIR / f"{key}.html").read_text(encoding="utf-8")


def ensure_starting_templates(account: object) -> None:
    """Copies the starting templates into an account that has no template yet."""
    with transaction.atomic():
        if EmailTemplate.objects.owned_by(account).exists():
            return
        EmailTemplate.objects.bulk_create(
            EmailTemplate(account=account, name=name, html=starting_html(key))
            for key, name in STARTING.items()
        )


def check_layout(html: str) -> list[str]:
    """Problems in a design template: the placeholder and its merge tags."""
    errors = []
    if not CONTENT.search(html):
        errors.append("The template needs a {{ content }} placeholder where the body goes.")
    # {{ content }} and {{ preheader }} are filled at freeze, before merging.
    source = PREHEADER.sub("", CONTENT.sub("", html))
    errors.extend(merge.check(source, where="Template"))
    return errors
