"""The panel's main navigation.

Sections appear once their app serves them: an entry whose URL name does not
resolve yet is left out, so the menu never links to a page that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

SECTIONS = [
    ("Lists", "lists:index"),
    ("Forms", "lists:form-index"),
    ("Campaigns", "campaigns:index"),
    ("Templates", "campaigns:template-index"),
    ("Statistics", "stats:index"),
    ("Settings", "account"),
]
OPERATOR_SECTIONS = [
    ("Outbox", "outbox"),
    ("Admin", "admin:index"),
]


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    active: bool


def _items(request: HttpRequest, sections: list[tuple[str, str]]) -> list[NavItem]:
    found = []
    for label, name in sections:
        try:
            found.append((label, reverse(name)))
        except NoReverseMatch:
            continue
    # The longest matching prefix is the current section (/lists/forms/ is Forms, not Lists).
    matching = [url for _, url in found if request.path.startswith(url)]
    current = max(matching, key=len, default=None)
    return [NavItem(label, url, url == current) for label, url in found]


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {
            "nav_items": [],
            "operator_nav_items": [],
            "signup_enabled": settings.SIGNUP_ENABLED,
        }
    return {
        "nav_items": _items(request, SECTIONS),
        "operator_nav_items": _items(request, OPERATOR_SECTIONS) if user.is_staff else [],
        "signup_enabled": settings.SIGNUP_ENABLED,
    }
