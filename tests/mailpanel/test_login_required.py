"""Every panel URL needs a signed-in user. The test walks the URL conf, so a new
view is covered the moment it is routed; public URLs are listed here by name."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Pages anyone may open. Add a name here only for a page meant for the public.
PUBLIC = {
    "login",
    "logout",
    "signup",
    "healthz",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
}
# "webhooks": ESP tracking posts, authenticated by signature or basic auth instead.
# "tracking": the open pixel and click redirect in campaign messages, loaded by mail
# clients with no session; a signed token names the delivery instead.
PUBLIC_NAMESPACES = {"admin", "public", "campaign_public", "webhooks", "tracking"}

SAMPLE = {"int": "1", "str": "sample", "slug": "sample", "uuid": str(uuid.uuid4()), "path": "a/b"}


def sample_path(route: str) -> str:
    def fill(match: re.Match[str]) -> str:
        converter = match.group(1) or "str"
        return SAMPLE.get(converter, "1")

    return re.sub(r"<(?:(\w+):)?\w+>", fill, route)


def walk(patterns: list, prefix: str = "", namespace: str | None = None):  # noqa: ANN201
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + route, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern.name, "/" + sample_path(prefix + route)


PANEL_URLS = [
    (f"{ns}:{name}" if ns else name, path)
    for ns, name, path in walk(get_resolver().url_patterns)
    if ns not in PUBLIC_NAMESPACES and name not in PUBLIC and "^" not in path
]


def test_the_walk_finds_the_panel() -> None:
    names = {name for name, _ in PANEL_URLS}
    assert {"home", "account", "outbox", "outbox-message"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), PANEL_URLS, ids=[n for n, _ in PANEL_URLS])
def test_panel_url_requires_login(client, name: str, path: str) -> None:  # noqa: ANN001
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 302, f"{name} {path} answered {response.status_code}"
        assert response["Location"].startswith("/accounts/login/"), response["Location"]
