"""The operators' quarantine in the admin: reprocess after a fix, or discard."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bounces import intake, parse
from bounces.models import BounceEvent, QuarantinedMessage
from tests.bounces.returned import message, raw_file, sent_to, verp_address

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:bounces_quarantinedmessage_changelist"


def act(client, action: str, *messages: QuarantinedMessage):  # noqa: ANN001, ANN201
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [m.pk for m in messages]},
        follow=True,
    )


def test_reprocessing_after_a_fix_stores_the_events(
    operator_client, operator, owner, monkeypatch
) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example")

    def explode(data: bytes) -> None:
        raise RuntimeError("parser exploded")

    with monkeypatch.context() as patched:
        patched.setattr(parse.email, "message_from_bytes", explode)
        intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    kept = QuarantinedMessage.objects.get()

    response = act(operator_client, "reprocess", kept)

    assert "1 reprocessed" in response.content.decode()
    kept.refresh_from_db()
    assert (kept.status, kept.handled_by) == ("reprocessed", operator)
    event = BounceEvent.objects.get()
    assert event.delivery == delivery and event.source == "pipe" and event.applied
    assert QuarantinedMessage.objects.count() == 1  # no second copy


def test_reprocessing_what_is_still_not_understood_keeps_it_waiting(operator_client) -> None:  # noqa: ANN001
    kept = intake.quarantine(raw_file("not_a_message.eml"), source="mailbox", reason="first")

    response = act(operator_client, "reprocess", kept)

    assert "still not understood" in response.content.decode()
    kept.refresh_from_db()
    assert kept.status == "waiting" and kept.reason.startswith("reprocessed, still: no recipient")
    assert QuarantinedMessage.objects.count() == 1 and not BounceEvent.objects.exists()


def test_discard_marks_it_handled_and_keeps_the_bytes(operator_client, operator) -> None:  # noqa: ANN001
    kept = intake.quarantine(b"junk", source="lmtp", reason="no recipient")

    act(operator_client, "discard", kept)

    kept.refresh_from_db()
    assert (kept.status, kept.handled_by, bytes(kept.raw)) == ("discarded", operator, b"junk")


def test_the_quarantine_shows_the_raw_message_to_operators(operator_client) -> None:  # noqa: ANN001
    kept = intake.quarantine(b"Subject: odd\n\nbody text", source="pipe", reason="why")
    url = reverse("admin:bounces_quarantinedmessage_change", args=[kept.pk])
    assert "body text" in operator_client.get(url).content.decode()


def test_list_owners_cannot_reach_the_quarantine(owner_client) -> None:  # noqa: ANN001
    response = owner_client.get(reverse(CHANGELIST))
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_the_admin_pages_of_the_bounce_models_open(operator_client, owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("dsn_blocklisted.eml", recipient="ann@reader.example")
    intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))
    for model in ("bounceevent", "bouncemailbox", "suppressionpolicy", "sendersidecounter",
                  "sendersidealert", "quarantinedmessage", "returnedmessage"):  # fmt: skip
        assert operator_client.get(reverse(f"admin:bounces_{model}_changelist")).status_code == 200
    event = BounceEvent.objects.get()
    for url in (
        reverse("admin:bounces_bounceevent_change", args=[event.pk]),
        reverse("admin:bounces_returnedmessage_change", args=[event.message_id]),
    ):
        response = operator_client.get(url)
        # The returned message, stored once, is shown whole to operators.
        assert response.status_code == 200 and "Reporting-MTA" in response.content.decode()


def test_the_mailbox_password_is_write_only(operator_client) -> None:  # noqa: ANN001
    from bounces.models import BounceMailbox

    response = operator_client.post(
        reverse("admin:bounces_bouncemailbox_add"),
        {"name": "main", "protocol": "imap", "host": "imap.example", "port": 993,
         "security": "tls", "username": "bounces", "password": "s3cret", "folder": "INBOX",
         "after_processing": "delete", "move_to_folder": "", "enabled": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    mailbox = BounceMailbox.objects.get()
    assert mailbox.get_password() == "s3cret" and "s3cret" not in mailbox.password_encrypted
    page = operator_client.get(reverse("admin:bounces_bouncemailbox_change", args=[mailbox.pk]))
    assert "s3cret" not in page.content.decode()
