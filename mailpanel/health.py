"""Liveness of the services mailpanel depends on, for /healthz."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the reason is logged
        logger.warning("health: database down: %s", exc)
        return "down"
    return "ok"


def check_cache() -> str:
    key = f"healthz:{uuid.uuid4().hex}"
    try:
        cache.set(key, "1", timeout=10)
        ok = cache.get(key) == "1"
        cache.delete(key)
    except Exception as exc:
        logger.warning("health: cache down: %s", exc)
        return "down"
    return "ok" if ok else "down"


def check_broker() -> str:
    from mailpanel.celery import app

    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("health: broker down: %s", exc)
        return "down"
    return "ok"


def check_all() -> dict[str, str]:
    """Returns the state ("ok" or "down") of the database, the broker and the cache."""
    return {"database": check_database(), "broker": check_broker(), "cache": check_cache()}
