from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests import services
from tests.factories import UserFactory

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL")


def has_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def has_redis() -> bool:
    return bool(settings.REDIS_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") and not has_postgres():
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if item.get_closest_marker("redis") and not has_redis():
            item.add_marker(pytest.mark.skip(reason="needs Redis: set REDIS_URL"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    # In CI a test skipped for want of Postgres or Redis is a failure, not a quiet skip.
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("MAILPANEL_REQUIRE_SERVICES")):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(name in reason for name in SERVICE_VARIABLES):
        report.outcome = "failed"
        report.longrepr = f"skipped under MAILPANEL_REQUIRE_SERVICES=1: {reason}"


@pytest.fixture(autouse=True)
def _repeatable_fake_data() -> None:
    # Factories draw names from Faker; one seed per test makes a failure reproduce on rerun
    # instead of depending on which names the tests before it happened to draw.
    import factory.random

    factory.random.reseed_random("mailpanel")


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Tasks run in the test process. Celery reads its settings once, so the flag is
    set on the app itself, not through Django's settings."""
    from mailpanel.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


# The cast.
@pytest.fixture
def owner(db):  # noqa: ANN001, ANN201
    return UserFactory(username="olivia")


@pytest.fixture
def delegate(db):  # noqa: ANN001, ANN201
    return UserFactory(username="dan")


@pytest.fixture
def stranger(db):  # noqa: ANN001, ANN201
    return UserFactory(username="sam")


@pytest.fixture
def operator(db):  # noqa: ANN001, ANN201
    return UserFactory(username="opal", is_staff=True, is_superuser=True)


@pytest.fixture
def owner_client(client, owner):  # noqa: ANN001, ANN201
    client.force_login(owner)
    return client


@pytest.fixture
def operator_client(client, operator):  # noqa: ANN001, ANN201
    client.force_login(operator)
    return client


@pytest.fixture
def outbox_dir(tmp_path: Path, settings) -> Path:  # noqa: ANN001
    settings.OUTBOX_DIR = tmp_path / "outbox"
    return settings.OUTBOX_DIR


@pytest.fixture
def smtp_server() -> Iterator[services.SMTPServer]:
    """An aiosmtpd server on a free loopback port that records every message."""
    controller, server = services.start_smtp_server()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup,
    django_db_blocker,
    tmp_path_factory: pytest.TempPathFactory,  # noqa: ANN001
) -> Iterator[services.WorkerProcess]:
    """A real Celery worker process on the test database and the test broker.

    Tests that use it need ``transactional_db`` so the worker sees their rows.
    """
    from mailpanel.celery import app

    app.control.purge()
    work_dir = tmp_path_factory.mktemp("worker")
    worker = services.WorkerProcess(
        work_dir / "worker.log",
        {"OUTBOX_DIR": str(work_dir / "outbox"), "NODE_HEARTBEAT_SECONDS": "1"},
    )
    worker.work_dir = work_dir  # type: ignore[attr-defined]
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
