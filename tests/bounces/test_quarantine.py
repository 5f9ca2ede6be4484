"""The operators' quarantine in the admin: reprocess after a fix, or discard."""

from __future__ import annotations

import json

import pytest
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.urls import reverse

from bounces import intake, parse
from bounces.models import BounceEvent, QuarantinedMessage
from tests.bounces.returned import message, raw_file, sent_to, verp_address
from tests.bounces.test_webhooks import (  # noqa: F401 (secrets and sns_certificate: fixtures)
    PAYLOADS,
    load,
    postmark_post,
    secrets,
    sendgrid_post,
    sns_certificate,
    sns_post,
)

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


# Webhook events: a quarantined payload goes through the receiver's conversion and recording
# again. An anymail that cannot read events stands for the bug an upgrade later fixes.


def _unreadable(*args: object) -> None:
    raise KeyError("timestamp")


def webhook_rows() -> dict[str, QuarantinedMessage]:
    return {q.provider_event_id: q for q in QuarantinedMessage.objects.filter(source="webhook")}


def test_a_quarantined_webhook_event_is_recorded_by_reprocessing(
    operator_client, operator, monkeypatch
) -> None:  # noqa: ANN001
    with monkeypatch.context() as patched:
        patched.setattr(SendGridTrackingWebhookView, "esp_to_anymail_event", _unreadable)
        assert sendgrid_post(operator_client).status_code == 200
    kept = webhook_rows()
    assert not BounceEvent.objects.exists() and len(kept) == 5

    response = act(operator_client, "reprocess", kept["6g4ZI7SA-xmRDv57GoPIPw=="])

    assert "1 reprocessed" in response.content.decode()
    event = BounceEvent.objects.get()
    assert (event.recipient, event.bounce_class, event.provider_event_id) == (
        "example@test.com", "hard", "6g4ZI7SA-xmRDv57GoPIPw==",
    )  # fmt: skip
    row = QuarantinedMessage.objects.get(provider_event_id="6g4ZI7SA-xmRDv57GoPIPw==")
    assert (row.status, row.handled_by) == ("reprocessed", operator)


def test_a_reprocessed_webhook_event_is_applied_once_whatever_came_first(
    operator_client, monkeypatch
) -> None:  # noqa: ANN001
    # SNS redelivers the notification after the fix, before an operator gets to the quarantine.
    with monkeypatch.context() as patched:
        patched.setattr(AmazonSESTrackingWebhookView, "esp_to_anymail_events", _unreadable)
        assert sns_post(operator_client, load("ses_bounce.json")).status_code == 200
    [kept] = webhook_rows().values()
    assert sns_post(operator_client, load("ses_bounce.json")).status_code == 200
    assert BounceEvent.objects.count() == 2

    act(operator_client, "reprocess", kept)

    kept.refresh_from_db()
    assert kept.status == "reprocessed"
    # The ids rebuilt from the kept event are the ones the live post recorded.
    assert sorted(BounceEvent.objects.values_list("provider_event_id", flat=True)) == [
        f"{kept.provider_event_id}:jane@example.com",
        f"{kept.provider_event_id}:richard@example.com",
    ]


def test_reprocessing_a_kept_ses_event_before_the_redelivery_records_it_once(
    operator_client, monkeypatch
) -> None:  # noqa: ANN001
    with monkeypatch.context() as patched:
        patched.setattr(AmazonSESTrackingWebhookView, "esp_to_anymail_events", _unreadable)
        sns_post(operator_client, load("ses_bounce.json"))
    [kept] = webhook_rows().values()

    act(operator_client, "reprocess", kept)
    assert sns_post(operator_client, load("ses_bounce.json")).status_code == 200

    assert sorted(BounceEvent.objects.values_list("recipient", "bounce_class")) == [
        ("jane@example.com", "hard"),
        ("richard@example.com", "sender_side"),
    ]
    # The kept event's own time, not the time of the reprocessing.
    assert {e.received_at.isoformat() for e in BounceEvent.objects.all()} == {
        "2016-01-27T14:59:44.101000+00:00"
    }


def test_a_webhook_event_that_still_fails_keeps_one_reason(operator_client) -> None:  # noqa: ANN001
    body = (PAYLOADS / "postmark_bad_date.json").read_bytes()
    assert postmark_post(operator_client, body).status_code == 200
    [kept] = webhook_rows().values()

    act(operator_client, "reprocess", kept)
    kept.refresh_from_db()
    first = kept.reason
    response = act(operator_client, "reprocess", kept)
    kept.refresh_from_db()

    assert "still not understood" in response.content.decode()
    assert kept.status == "waiting" and kept.reason == first
    assert first.startswith("reprocessed, still: unreadable event: TypeError")
    assert json.loads(bytes(kept.raw))["ID"] == 4323372036854775001
    assert not BounceEvent.objects.exists()


def test_a_kept_legacy_mailgun_form_post_is_reprocessed(operator_client) -> None:  # noqa: ANN001
    # Mailgun's legacy webhooks post forms; the receiver keeps them as {field: [values]}.
    form = {
        "event": ["bounced"], "recipient": ["gone@example.com"], "code": ["550"],
        "error": ["5.1.1 The email account that you tried to reach does not exist."],
        "timestamp": ["1521233195"], "token": ["legacy-token-1"], "signature": ["x"],
        "Message-Id": ["<20130503192659.13651.20287@sandbox.mailgun.org>"],
    }  # fmt: skip
    kept = intake.quarantine(
        json.dumps(form), source="webhook", provider="mailgun", reason="first",
        event_id="legacy-token-1",
    )  # fmt: skip

    act(operator_client, "reprocess", kept)

    kept.refresh_from_db()
    event = BounceEvent.objects.get()
    assert kept.status == "reprocessed"
    assert (event.recipient, event.bounce_class, event.provider_event_id) == (
        "gone@example.com", "hard", "legacy-token-1",
    )  # fmt: skip
