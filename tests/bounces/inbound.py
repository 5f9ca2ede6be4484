"""Running the inbound commands as real processes on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from tests.services import database_url

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def command_env(**overrides: str) -> dict[str, str]:
    # The same SECRET_KEY, or the child would not accept the VERP signatures made here.
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        **overrides,
    }


def manage(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, str(MANAGE), *args],
        input=stdin,
        capture_output=True,
        env=command_env(**env),
        timeout=60,
        check=False,
    )


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 (our own manage.py)
        [sys.executable, str(MANAGE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=command_env(),
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"the receiver exited: {output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")
