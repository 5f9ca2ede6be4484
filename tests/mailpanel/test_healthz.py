from __future__ import annotations

import pytest
from django.urls import reverse

from tests.services import free_port


@pytest.mark.django_db
def test_healthz_reports_every_service_up(client) -> None:  # noqa: ANN001
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "cache": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_cache_is_down(client, settings) -> None:  # noqa: ANN001
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["cache"] == "down"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings) -> None:  # noqa: ANN001
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["cache"] == "ok"


def test_healthz_is_503_when_the_database_is_down(tmp_path) -> None:  # noqa: ANN001
    # The database is fixed at start-up, so a process of its own points at a closed port.
    import json
    import os
    import subprocess
    import sys

    from tests.services import ROOT

    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz');"
        "print(json.dumps({**r.json(), 'http': r.status_code}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailpanel.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        "MAILPANEL_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["http"] == 503
    assert answer["database"] == "down"
    assert answer["broker"] == "ok" and answer["cache"] == "ok"
