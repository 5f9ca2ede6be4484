from __future__ import annotations

from collections.abc import Iterator

import pytest

from sending import smtp
from sending.models import Relay
from tests.sending import scripted_smtp


@pytest.fixture(autouse=True)
def _fresh_connection_pool() -> Iterator[None]:
    # Each test has its own SMTP servers; connections must not outlive them.
    yield
    smtp.pool.close_all()


@pytest.fixture
def scripted():  # noqa: ANN201
    servers = []

    def start(
        script: dict[str, list[str]] | None = None,
        name: str = "main",
        weight: int = 100,
        **options,  # noqa: ANN003
    ):  # noqa: ANN202
        controller, handler, port = scripted_smtp.start(script, **options)
        servers.append(controller)
        relay = Relay.objects.create(name=name, host="127.0.0.1", port=port, security="none",
                                     rate_per_second=1000, weight=weight)  # fmt: skip
        return handler, relay

    yield start
    for controller in servers:
        controller.stop()
