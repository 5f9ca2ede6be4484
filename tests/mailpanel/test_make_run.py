"""`make run`, the README's first command: it starts, serves the login page, and
Ctrl-C (SIGINT to its process group, as a terminal sends it) stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.services import ROOT, free_port

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY")


def session_processes(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(sid)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def wait_for_login_page(url: str, process: subprocess.Popen, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                return response.read()
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"no login page at {url} after {timeout}s")


def start_make_run(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, int, Path]:
    port, outbox_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SERVICE_VARIABLES and not k.startswith("MAKE")
    }
    env.update(
        MAILPANEL_VAR_DIR=str(tmp_path / "var"),
        MAILPANEL_ADDR=f"127.0.0.1:{port}",
        OUTBOX_SMTP_PORT=str(outbox_port),
    )
    log_path = tmp_path / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port, log_path


def stop_with_ctrl_c(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert session_processes(process.pid) == []


def kill_leftovers(process: subprocess.Popen) -> None:
    if process.poll() is None or session_processes(process.pid):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.timeout(300)
def test_make_run_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    process, port, log_path = start_make_run(tmp_path, "run.log")
    try:
        page = wait_for_login_page(f"http://127.0.0.1:{port}/accounts/login/", process, 150)
        assert b"Sign in to mailpanel" in page
        output = log_path.read_text()
        assert "user name: admin" in output and "password:" in output
        # Worker, beat and outbox are up too.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = "\n".join(session_processes(process.pid))
            if all(word in running for word in ("worker", "beat", "run_outbox", "runserver")):
                break
            time.sleep(0.5)
        assert all(w in running for w in ("worker", "beat", "run_outbox", "runserver")), running
        stop_with_ctrl_c(process)
    finally:
        kill_leftovers(process)

    # A second `make run` reuses the database and the operator: nothing is created again.
    again, port, log_path = start_make_run(tmp_path, "again.log")
    try:
        page = wait_for_login_page(f"http://127.0.0.1:{port}/accounts/login/", again, 90)
        assert b"Sign in to mailpanel" in page
        output = log_path.read_text()
        assert "Created the operator account" not in output
        assert "No migrations to apply" in output
        stop_with_ctrl_c(again)
    finally:
        kill_leftovers(again)
