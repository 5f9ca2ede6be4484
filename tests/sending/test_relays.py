from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sending import relays
from sending.models import Relay
from tests.services import free_port

pytestmark = pytest.mark.django_db


def make_relay(port: int, **kwargs: object) -> Relay:
    return Relay.objects.create(
        name=kwargs.pop("name", "loopback"), host="127.0.0.1", port=port,
        security=Relay.Security.NONE, **kwargs,
    )  # fmt: skip


def test_send_test_delivers_through_the_relay(smtp_server) -> None:  # noqa: ANN001
    relay = make_relay(smtp_server.port)
    result = relays.send_test(relay, "ops@example.com", "ops@example.com")
    assert result.ok, result.detail
    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["ops@example.com"]
    assert b"mailpanel relay test: loopback" in message.data


def test_send_test_reports_a_refused_connection_without_raising() -> None:
    relay = make_relay(free_port())
    result = relays.send_test(relay, "ops@example.com", "ops@example.com")
    assert not result.ok
    assert "Connection refused" in result.detail or "ConnectionRefused" in result.detail


def test_password_is_stored_encrypted() -> None:
    relay = make_relay(25, username="smtpuser")
    relay.set_password("hunter2-very-secret")
    relay.save()
    stored = Relay.objects.values_list("password_encrypted", flat=True).get(id=relay.id)
    assert "hunter2" not in stored
    assert Relay.objects.get(id=relay.id).get_password() == "hunter2-very-secret"


def test_repeated_failures_cool_a_relay_down_and_success_heals_it() -> None:
    relay = make_relay(25)
    for _ in range(relays.FAILURES_BEFORE_COOLDOWN - 1):
        relays.record_failure(relay, "421 try later")
    assert relay in Relay.objects.usable()
    relays.record_failure(relay, "421 try later")
    assert relay not in Relay.objects.usable()
    relay.refresh_from_db()
    assert relay.cooldown_until > timezone.now() + timedelta(seconds=20)
    relays.record_success(relay)
    assert relay in Relay.objects.usable()


def test_dedicated_relays_serve_only_their_accounts(owner, stranger) -> None:  # noqa: ANN001
    shared = make_relay(25, name="shared")
    dedicated = make_relay(26, name="dedicated")
    dedicated.accounts.add(owner)
    assert list(Relay.objects.for_account(owner)) == [dedicated]
    assert list(Relay.objects.for_account(stranger)) == [shared]


def test_operator_sends_a_test_from_the_admin(operator_client, operator, smtp_server) -> None:  # noqa: ANN001
    relay = make_relay(smtp_server.port)
    response = operator_client.post(
        reverse("admin:sending_relay_changelist"),
        {"action": "send_test_message", "_selected_action": [relay.pk]},
        follow=True,
    )
    assert b"accepted for" in response.content
    assert smtp_server.wait_for(1)[0].rcpt_tos == [operator.email]


def test_operator_adds_a_relay_with_a_password_in_the_admin(operator_client) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:sending_relay_add"),
        {
            "name": "main", "host": "smtp.example.com", "port": 587, "security": "starttls",
            "username": "u", "password": "pw-secret", "max_connections": 4,
            "rate_per_second": 20, "weight": 100, "enabled": "on",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    assert Relay.objects.get(name="main").get_password() == "pw-secret"
