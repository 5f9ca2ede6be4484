from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import dkim
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sending import domains, relays
from sending.models import Relay, SendingDomain
from tests.services import free_port

pytestmark = pytest.mark.django_db


def make_relay(port: int, **kwargs: object) -> Relay:
    return Relay.objects.create(
        name=kwargs.pop("name", "loopback"), host="127.0.0.1", port=port,
        security=Relay.Security.NONE, **kwargs,
    )  # fmt: skip


def test_send_test_delivers_through_the_relay_and_reports_its_reply(scripted, settings) -> None:  # noqa: ANN001
    settings.DEFAULT_FROM_EMAIL = "Mailpanel <panel@mail.example.net>"
    handler, relay = scripted({"ops@example.org": ["250 2.0.0 Ok: queued as 4XyZ"]}, name="lo")
    result = relays.send_test(relay, "ops@example.org")
    assert result.ok, result.detail
    assert "250 2.0.0 Ok: queued as 4XyZ" in result.detail
    (message,) = handler.messages
    assert message.rcpt_tos == ["ops@example.org"]
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["Subject"] == "mailpanel relay test: lo"
    # No verified domain: the server's own sender, with the return path its mail has.
    assert parsed["From"] == "panel@mail.example.net"
    assert message.mail_from.startswith("bounces+m0-")
    assert message.mail_from.endswith("@mail.example.net")
    assert b"DKIM-Signature" not in message.data


def test_send_test_goes_through_that_relay_only(scripted) -> None:  # noqa: ANN001
    # The other relay would win any weighted draw: the test must not use it.
    favourite, _ = scripted(name="favourite", weight=100000)
    tested, relay = scripted(name="tested", weight=1)
    assert relays.send_test(relay, "ops@example.org").ok
    assert [m.rcpt_tos for m in tested.messages] == [["ops@example.org"]]
    assert favourite.messages == []


def test_send_test_is_from_a_verified_domain_and_signed_with_its_key(
    scripted, settings, owner
) -> None:  # noqa: ANN001
    settings.DEFAULT_FROM_EMAIL = "noreply@panel.example.net"
    domains.create("unverified.example", account=None)  # never picked: not verified
    verified = domains.create("news.example.com", account=None)
    SendingDomain.objects.filter(id=verified.id).update(verified_at=timezone.now())
    theirs = domains.create("a-customer.example", account=owner)  # not this relay's account
    SendingDomain.objects.filter(id=theirs.id).update(verified_at=timezone.now())
    handler, relay = scripted()
    assert relays.sender_for_test(relay) == ("noreply@news.example.com", None)

    assert relays.send_test(relay, "ops@example.org").ok
    (message,) = handler.messages
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert parsed["From"] == "noreply@news.example.com"
    records = {r.name: r.value for r in domains.records(verified)}
    assert dkim.verify(message.data, dnsfunc=lambda name, timeout=5: records.get(
        name.decode().rstrip("."), "").encode())  # fmt: skip


def test_a_dedicated_relay_tests_from_its_accounts_verified_domain(scripted, owner) -> None:  # noqa: ANN001
    _, relay = scripted()
    relay.accounts.add(owner)
    theirs = domains.create("olivia.example", account=owner)
    assert relays.sender_for_test(relay)[0] == "mailpanel@localhost"  # not verified yet
    SendingDomain.objects.filter(id=theirs.id).update(verified_at=timezone.now())
    assert relays.sender_for_test(relay) == ("mailpanel@olivia.example", owner.id)


def test_the_default_sender_is_kept_when_its_domain_is_verified(scripted, settings) -> None:  # noqa: ANN001
    settings.DEFAULT_FROM_EMAIL = "Panel <panel@b.example>"
    for name in ("a.example", "b.example"):
        row = domains.create(name, account=None)
        SendingDomain.objects.filter(id=row.id).update(verified_at=timezone.now())
    _, relay = scripted()
    assert relays.sender_for_test(relay) == ("panel@b.example", None)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"rcpt_script": {"ops@example.org": "550 5.7.1 Relaying denied"}},
         "RCPT TO:<ops@example.org> refused: 550 5.7.1 Relaying denied"),
        ({"script": {"ops@example.org": ["554 5.7.1 Message rejected as spam"]}},
         "the message was refused: 554 5.7.1 Message rejected as spam"),
    ],
)  # fmt: skip
def test_send_test_reports_the_relays_refusal(scripted, script, expected: str) -> None:  # noqa: ANN001
    handler, relay = scripted(**script)
    result = relays.send_test(relay, "ops@example.org")
    assert not result.ok
    assert result.detail == expected
    assert handler.messages == []


def test_send_test_reports_a_refused_connection_without_raising() -> None:
    relay = make_relay(free_port())
    result = relays.send_test(relay, "ops@example.org")
    assert not result.ok
    assert result.detail.startswith("could not open a session: ConnectionRefusedError")


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


def send_test_url(relay: Relay) -> str:
    return reverse("admin:sending_relay_send_test", args=[relay.pk])


def test_the_relay_page_has_a_send_test_button(operator_client, scripted) -> None:  # noqa: ANN001
    _, relay = scripted()
    page = operator_client.get(reverse("admin:sending_relay_change", args=[relay.pk]))
    assert f'href="{send_test_url(relay)}"'.encode() in page.content


def test_operator_sends_a_test_from_the_relay_page(operator_client, operator, scripted) -> None:  # noqa: ANN001
    handler, relay = scripted({"desk@example.org": ["250 2.0.0 Ok: queued as 7QQ"]})
    form = operator_client.get(send_test_url(relay))
    assert form.context["form"]["recipient"].value() == operator.email  # the default
    assert handler.messages == []  # asking sends nothing

    response = operator_client.post(
        send_test_url(relay), {"recipient": "desk@example.org"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("admin:sending_relay_change", args=[relay.pk])
    (shown,) = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert shown[0] == "success"
    assert "250 2.0.0 Ok: queued as 7QQ" in shown[1]
    assert [m.rcpt_tos for m in handler.messages] == [["desk@example.org"]]


def test_a_refusal_is_shown_as_an_error_on_the_relay_page(operator_client, scripted) -> None:  # noqa: ANN001
    handler, relay = scripted(rcpt_script={"desk@example.org": "554 5.7.1 Relay access denied"})
    response = operator_client.post(
        send_test_url(relay), {"recipient": "desk@example.org"}, follow=True
    )
    (shown,) = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert shown == (
        "error",
        f"Test through {relay.name}: RCPT TO:<desk@example.org> refused: "
        "554 5.7.1 Relay access denied",
    )
    assert b"554 5.7.1 Relay access denied" in response.content
    assert handler.messages == []


def test_send_test_needs_a_csrf_token(operator, scripted) -> None:  # noqa: ANN001
    handler, relay = scripted()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(send_test_url(relay), {"recipient": "desk@example.org"})
    assert response.status_code == 403
    # The same post with the form's token goes through.
    token = client.get(send_test_url(relay)).context["csrf_token"]
    response = client.post(
        send_test_url(relay), {"recipient": "desk@example.org", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert len(handler.messages) == 1


def test_send_test_is_for_staff_with_the_right_to_change_relays(client, owner, scripted) -> None:  # noqa: ANN001
    handler, relay = scripted()
    client.force_login(owner)  # not staff
    response = client.post(send_test_url(relay), {"recipient": "desk@example.org"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    owner.is_staff = True  # staff, but no permission on relays
    owner.save()
    response = client.post(send_test_url(relay), {"recipient": "desk@example.org"})
    assert response.status_code == 403
    owner.user_permissions.add(Permission.objects.get(codename="change_relay"))
    response = client.post(send_test_url(relay), {"recipient": "desk@example.org"})
    assert response.status_code == 302
    assert [m.rcpt_tos for m in handler.messages] == [["desk@example.org"]]


def test_a_bad_recipient_is_asked_again(operator_client, scripted) -> None:  # noqa: ANN001
    handler, relay = scripted()
    response = operator_client.post(send_test_url(relay), {"recipient": "not an address"})
    assert response.status_code == 200
    assert response.context["form"].errors["recipient"]
    assert handler.messages == []


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
