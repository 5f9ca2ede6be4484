"""bench_send on the real pipeline (beat, a Celery worker, Postgres, Redis) under the
production rule that campaigns send only from verified domains, with one recipient
refused: a failed delivery has no send time and must not upset the timing."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from sending.models import SendingDomain
from stats.models import TrackingEvent
from tests import services
from tests.sending import scripted_smtp

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(240),
]


def test_bench_send_without_dkim_runs_where_senders_must_be_verified(settings, monkeypatch) -> None:  # noqa: ANN001
    settings.REQUIRE_VERIFIED_SENDER_DOMAIN = True
    # The benchmark's beat and worker processes: the same rule, on the test database.
    monkeypatch.setenv("REQUIRE_VERIFIED_SENDER_DOMAIN", "true")
    monkeypatch.setenv("DATABASE_URL", services.database_url())
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    refused = "r3@bench3.example.org"
    controller, handler, port = scripted_smtp.start(rcpt_script={refused: "550 5.1.1 no such user"})
    out = io.StringIO()
    try:
        call_command(
            "bench_send", "--recipients", "30", "--smtp", f"127.0.0.1:{port}",
            "--dkim", "none", "--workers", "1", stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
    finally:
        controller.stop()

    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (result["recipients"], result["sent"], result["failed"]) == (30, 29, 1)
    assert result["seconds"] > 0 and result["messages_per_second"] > 0
    received = [m.rcpt_tos[0] for m in handler.messages]
    assert len(received) == len(set(received)) == 29 and refused not in received
    assert not [m for m in handler.messages if b"DKIM-Signature" in m.data]
    # Cleaned up, the event log included (it keeps no foreign keys to cascade along).
    assert not SendingDomain.objects.filter(domain="bench.example.com").exists()
    assert not TrackingEvent.objects.exists()
