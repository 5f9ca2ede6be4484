"""System checks for configuration mistakes (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.compatibility)
def check_production_services(app_configs: Any, **kwargs: Any) -> list[Error | Warning]:
    if settings.EMBEDDED:
        return []
    problems: list[Error | Warning] = []
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        problems.append(
            Error(
                "The Celery broker is the local filesystem while DATABASE_URL is set.",
                hint="Set CELERY_BROKER_URL or REDIS_URL so workers on other hosts get tasks.",
                id="mailpanel.E001",
            )
        )
    if not settings.SITE_URL:
        problems.append(
            Error(
                "SITE_URL is not set: links in mail (unsubscribe, confirm) need an absolute URL.",
                hint="Set SITE_URL to the public address of the panel, e.g. https://mail.example.com.",
                id="mailpanel.E002",
            )
        )
    elif not settings.SITE_URL.startswith(("http://", "https://")):
        problems.append(
            Error(
                f"SITE_URL {settings.SITE_URL!r} is not an http(s) URL.",
                id="mailpanel.E003",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(
            Warning(
                "DATABASE_URL points at SQLite: several workers and web processes need Postgres.",
                id="mailpanel.W001",
            )
        )
    if not settings.REDIS_URL:
        problems.append(
            Warning(
                "REDIS_URL is not set: the cache and rate limits are local to each host.",
                hint="Set REDIS_URL when mailpanel runs on more than one host.",
                id="mailpanel.W002",
            )
        )
    if not settings.MAILPANEL_ENCRYPTION_KEY:
        problems.append(
            Warning(
                "MAILPANEL_ENCRYPTION_KEY is not set: stored relay passwords and DKIM keys are "
                "encrypted with a key derived from SECRET_KEY, and rotating it loses them.",
                hint="Generate one with `python manage.py generate_encryption_key`.",
                id="mailpanel.W003",
            )
        )
    return problems
