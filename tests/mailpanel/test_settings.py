"""Settings read from the environment, checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.services import ROOT

PRODUCTION = {
    "DATABASE_URL": "postgres://mailpanel@127.0.0.1:5432/mailpanel",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-value",
    "ALLOWED_HOSTS": "mail.example.com",
    "SITE_URL": "https://mail.example.com",
    "MAILPANEL_ENCRYPTION_KEY": "x3Yk0ZSh3H2hA1y0b3Ck8m0d0m3n2Q5b9fN7s2J1v8c=",
}

SHOW = (
    "from django.conf import settings as s; import json; "
    "print(json.dumps({'debug': s.DEBUG, 'engine': s.DATABASES['default']['ENGINE'], "
    "'broker': s.CELERY_BROKER_URL, 'cache': s.CACHES['default']['BACKEND'], "
    "'email_port': s.EMAIL_PORT, 'secret': s.SECRET_KEY}))"
)


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MAILPANEL_VAR_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def show(env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    setup = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'mailpanel.settings'"
    result = run(["-c", f"{setup}; django.setup(); {SHOW}"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_environment_runs_on_the_embedded_default(tmp_path: Path) -> None:
    values = show({}, tmp_path)
    assert values["debug"] is True
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["broker"] == "filesystem://"
    assert values["cache"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert values["email_port"] == 1025
    assert (tmp_path / "var" / "broker" / "queue").is_dir()


def test_production_environment_uses_postgres_and_redis(tmp_path: Path) -> None:
    values = show(PRODUCTION, tmp_path)
    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["broker"] == PRODUCTION["REDIS_URL"]
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file-" + "s" * 50)
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    values = show({**env, "SECRET_KEY_FILE": str(secret_file)}, tmp_path)
    assert values["secret"] == "from-a-file-" + "s" * 50


def test_check_deploy_passes_under_production(tmp_path: Path) -> None:
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION, tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_broker_in_production_is_a_system_check_error(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    result = run(["manage.py", "check"], env, tmp_path)
    assert result.returncode != 0
    assert "mailpanel.E001" in result.stderr
    assert "mailpanel.W002" in result.stderr


def test_missing_site_url_in_production_is_a_system_check_error(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SITE_URL"}
    result = run(["manage.py", "check"], env, tmp_path)
    assert "mailpanel.E002" in result.stderr
