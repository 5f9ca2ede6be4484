"""ESP tracking webhooks, posted as each provider posts them (payloads in webhooks/, from
the providers' documentation), authenticated with test secrets."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.utils import timezone

from bounces import sns, tasks
from bounces.models import BounceEvent, ProviderEventReceipt, QuarantinedMessage
from stats.models import TrackingEvent
from tests.bounces.returned import message_id_of, sent_to

PAYLOADS = Path(__file__).parent / "webhooks"
SECRET = "esp:webhook-test-secret"
SIGNING_KEY = "key-mailgun-test-signing-key"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def secrets(settings) -> None:  # noqa: ANN001
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY, "WEBHOOK_SECRET": [SECRET]}
    settings.AMAZON_SES_SNS_TOPIC_ARNS = [TOPIC]


def load(name: str) -> object:
    return json.loads((PAYLOADS / name).read_text())


def basic_auth(credentials: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def events() -> list[tuple[str, str, str, str]]:
    return sorted(
        BounceEvent.objects.values_list("provider", "recipient", "bounce_class", "status_code")
    )


# Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key, and the basic auth
# WEBHOOK_SECRET shares with the other providers (in the URL configured at Mailgun).


def mailgun_post(client, name: str, key: str = SIGNING_KEY, payload: dict | None = None):  # noqa: ANN001, ANN201
    payload = payload or load(name)
    timestamp, token = str(int(time.time())), hashlib.sha256(name.encode()).hexdigest()
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    payload["signature"] = {
        "timestamp": timestamp,
        "token": token,
        "signature": signature.hexdigest(),
    }
    return client.post(
        "/webhooks/mailgun/tracking/",
        json.dumps(payload),
        content_type="application/json",
        **basic_auth(),
    )


def test_mailgun_permanent_failure_is_a_hard_bounce(client) -> None:  # noqa: ANN001
    assert mailgun_post(client, "mailgun_failed_permanent.json").status_code == 200
    event = BounceEvent.objects.get()
    assert (event.provider, event.recipient, event.bounce_class) == (
        "mailgun", "alice@example.com", "hard",
    )  # fmt: skip
    assert (event.reply_code, event.diagnostic) == ("550", "No Such User Here")
    assert json.loads(event.raw)["event-data"]["id"] == "G9Bn5sl1TC6nu79C8C0bwg"


def test_mailgun_temporary_failure_is_soft(client) -> None:  # noqa: ANN001
    assert mailgun_post(client, "mailgun_failed_temporary.json").status_code == 200
    assert events() == [("mailgun", "carol@example.com", "soft", "4.2.2")]


def test_mailgun_post_with_a_bad_signature_is_refused(client) -> None:  # noqa: ANN001
    response = mailgun_post(client, "mailgun_failed_permanent.json", key="key-someone-else")
    assert response.status_code == 400
    assert BounceEvent.objects.count() == 0


def test_a_replayed_mailgun_event_applies_once(client) -> None:  # noqa: ANN001
    for _ in range(2):
        assert mailgun_post(client, "mailgun_failed_permanent.json").status_code == 200
    assert BounceEvent.objects.count() == 1


# SendGrid: batches of events, basic auth.


def sendgrid_post(client, credentials: str = SECRET, name: str = "sendgrid_batch.json"):  # noqa: ANN001, ANN201
    body = (PAYLOADS / name).read_bytes()
    return client.post(
        "/webhooks/sendgrid/tracking/", body, content_type="application/json",
        **basic_auth(credentials),
    )  # fmt: skip


def test_sendgrid_batch_applies_with_its_bad_event_quarantined(client) -> None:  # noqa: ANN001
    assert sendgrid_post(client).status_code == 200
    assert events() == [
        ("sendgrid", "blocked@test.com", "sender_side", "5.7.1"),
        ("sendgrid", "complainer@test.com", "complaint", ""),
        ("sendgrid", "example@test.com", "hard", "5.0.0"),
    ]
    kept = QuarantinedMessage.objects.get()
    assert (kept.source, kept.provider) == ("webhook", "sendgrid")
    assert "without a recipient" in kept.reason
    assert json.loads(bytes(kept.raw))["sg_event_id"] == "9g4ZI7SA-no-recipient=="


def test_a_replayed_sendgrid_batch_applies_once(client) -> None:  # noqa: ANN001
    sendgrid_post(client)
    assert sendgrid_post(client).status_code == 200
    assert BounceEvent.objects.count() == 3


def test_sendgrid_post_with_wrong_credentials_is_refused(client) -> None:  # noqa: ANN001
    assert sendgrid_post(client, "esp:guessed").status_code == 400
    assert BounceEvent.objects.count() == 0 and QuarantinedMessage.objects.count() == 0


def test_a_webhook_without_its_secret_configured_is_not_served(client, settings) -> None:  # noqa: ANN001
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY, "WEBHOOK_SECRET": []}
    assert sendgrid_post(client).status_code == 404
    assert BounceEvent.objects.count() == 0


# Postmark: one event per post, basic auth; bounce Type codes decide the class.


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("postmark_bounce.json", ("postmark", "john@example.com", "hard", "5.1.1")),
        ("postmark_spam_notification.json", ("postmark", "jane@example.com", "sender_side", "")),
    ],
)
def test_postmark_bounce_types(client, name: str, expected: tuple) -> None:  # noqa: ANN001
    response = client.post(
        "/webhooks/postmark/tracking/", (PAYLOADS / name).read_text(),
        content_type="application/json", **basic_auth(),
    )  # fmt: skip
    assert response.status_code == 200
    assert events() == [expected]


def test_postmark_post_without_credentials_is_refused(client) -> None:  # noqa: ANN001
    response = client.post(
        "/webhooks/postmark/tracking/",
        (PAYLOADS / "postmark_bounce.json").read_text(),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert BounceEvent.objects.count() == 0


# Amazon SES: SNS notifications with basic auth, from the configured topic only, signed by
# SNS. The signing certificate is AWS's to serve: here a test certificate stands in for it.

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_pem() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(SNS_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(SNS_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(autouse=True)
def sns_certificate() -> Iterator[mock.Mock]:
    sns._public_key.cache_clear()
    with mock.patch("bounces.sns.urlopen") as fetch:
        fetch.return_value.__enter__.return_value = io.BytesIO(_certificate_pem())
        yield fetch
    sns._public_key.cache_clear()


def signed(body: dict, key: rsa.RSAPrivateKey = SNS_KEY) -> dict:
    body = {**body, "SignatureVersion": "2", "SigningCertURL": CERT_URL}
    names = sns.SIGNED_FIELDS[body["Type"]]
    text = "".join(f"{name}\n{body[name]}\n" for name in names if name in body)
    signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {**body, "Signature": base64.b64encode(signature).decode()}


def sns_post(  # noqa: ANN201
    client,  # noqa: ANN001
    message: dict | str,
    topic: str = TOPIC,
    auth: bool = True,
    key: rsa.RSAPrivateKey = SNS_KEY,
):
    text = message if isinstance(message, str) else json.dumps(message)
    body = {
        "Type": "Notification",
        "MessageId": hashlib.sha256(text.encode()).hexdigest()[:36],
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": text,
        "Timestamp": "2026-03-26T17:58:59.675Z",
    }
    body = signed(body, key)
    return client.post(
        "/webhooks/amazon_ses/tracking/",
        json.dumps(body),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_ID=body["MessageId"],
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=body["Type"],
        **(basic_auth() if auth else {}),
    )


def test_ses_permanent_bounce_is_hard_unless_the_diagnostic_blames_the_sender(client) -> None:  # noqa: ANN001
    assert sns_post(client, load("ses_bounce.json")).status_code == 200
    assert events() == [
        ("ses", "jane@example.com", "hard", "5.1.1"),
        ("ses", "richard@example.com", "sender_side", "5.7.1"),
    ]


def test_ses_transient_bounce_and_complaint(client) -> None:  # noqa: ANN001
    sns_post(client, load("ses_transient.json"))
    sns_post(client, load("ses_complaint.json"))
    assert events() == [
        ("ses", "mary@example.com", "soft", "4.2.2"),
        ("ses", "richard@example.com", "complaint", ""),
    ]


def test_a_replayed_sns_notification_applies_once(client) -> None:  # noqa: ANN001
    sns_post(client, load("ses_bounce.json"))
    sns_post(client, load("ses_bounce.json"))
    assert BounceEvent.objects.count() == 2


def test_sns_notification_from_another_topic_is_refused(client) -> None:  # noqa: ANN001
    response = sns_post(client, load("ses_bounce.json"), topic="arn:aws:sns:us-east-1:666:x")
    assert response.status_code == 400
    assert BounceEvent.objects.count() == 0


def test_sns_notification_with_a_forged_signature_is_refused(client) -> None:  # noqa: ANN001
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = sns_post(client, load("ses_bounce.json"), key=forger)
    assert response.status_code == 400
    assert BounceEvent.objects.count() == 0


def test_sns_signing_certificate_must_come_from_sns(client, sns_certificate) -> None:  # noqa: ANN001
    with mock.patch(f"{__name__}.CERT_URL", "https://attacker.example/cert.pem"):
        response = sns_post(client, load("ses_bounce.json"))
    assert response.status_code == 400
    sns_certificate.assert_not_called()
    assert BounceEvent.objects.count() == 0


def test_sns_without_credentials_is_asked_for_them(client) -> None:  # noqa: ANN001
    response = sns_post(client, load("ses_bounce.json"), auth=False)
    assert response.status_code == 401 and "Basic" in response["WWW-Authenticate"]
    assert BounceEvent.objects.count() == 0


def subscription(url: str, topic: str = TOPIC) -> dict:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": topic,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": url,
        "Timestamp": "2026-03-26T17:58:59.675Z",
    }


def post_subscription(client, body: dict):  # noqa: ANN001, ANN201
    body = signed(body)
    return client.post(
        "/webhooks/amazon_ses/tracking/", json.dumps(body), content_type="text/plain",
        HTTP_X_AMZ_SNS_MESSAGE_ID=body["MessageId"], HTTP_X_AMZ_SNS_MESSAGE_TYPE=body["Type"],
        **basic_auth(),
    )  # fmt: skip


def test_sns_subscription_to_our_topic_is_confirmed(client) -> None:  # noqa: ANN001
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37"
    with mock.patch("bounces.webhooks.urlopen") as confirm:
        assert post_subscription(client, subscription(url)).status_code == 200
    confirm.assert_called_once_with(url, timeout=10)


def test_sns_subscription_pointing_elsewhere_is_not_followed(client) -> None:  # noqa: ANN001
    with mock.patch("bounces.webhooks.urlopen") as confirm:
        response = post_subscription(client, subscription("https://attacker.example/confirm"))
        other_topic = post_subscription(
            client,
            subscription("https://sns.us-east-1.amazonaws.com/?x", topic="arn:aws:sns:x:1:y"),
        )
    assert response.status_code == 400 and other_topic.status_code == 400
    confirm.assert_not_called()


# A bad event in a post that passed the check: quarantined, the rest applied, answered 200.
# Broken bodies are in webhooks/broken/.


def quarantined() -> list[tuple[str, str]]:
    return sorted(QuarantinedMessage.objects.values_list("provider", "reason"))


def test_sendgrid_events_anymail_cannot_read_are_quarantined_and_the_rest_apply(client) -> None:  # noqa: ANN001
    assert sendgrid_post(client, name="sendgrid_batch_broken.json").status_code == 200
    assert events() == [
        ("sendgrid", "complainer@test.com", "complaint", ""),
        ("sendgrid", "example@test.com", "hard", "5.0.0"),
    ]
    kept = {bytes(q.raw).decode(): q.reason for q in QuarantinedMessage.objects.all()}
    assert len(kept) == 3 and all(reason.startswith("unreadable event") for reason in kept.values())
    assert "null" in kept and '"bounce"' in kept
    [late] = [json.loads(raw) for raw in kept if raw.startswith("{")]
    assert late["timestamp"] == "yesterday"


def test_a_replayed_broken_sendgrid_batch_applies_and_is_quarantined_once(client) -> None:  # noqa: ANN001
    sendgrid_post(client, name="sendgrid_batch_broken.json")
    assert sendgrid_post(client, name="sendgrid_batch_broken.json").status_code == 200
    assert BounceEvent.objects.count() == 2
    # The element with an event id is kept once; null and "bounce" have no id to know them by.
    assert (
        QuarantinedMessage.objects.filter(provider_event_id="Ag4ZI7SA-bad-timestamp==").count() == 1
    )


@pytest.mark.parametrize(
    "name", ["json_object.json", "not_json.txt", "latin1.json", "json_null.json"]
)
def test_a_sendgrid_body_that_is_not_a_batch_is_quarantined_whole(client, name: str) -> None:  # noqa: ANN001
    assert sendgrid_post(client, name=f"broken/{name}").status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert bytes(kept.raw) == (PAYLOADS / "broken" / name).read_bytes()
    assert (kept.provider, kept.source) == ("sendgrid", "webhook")
    assert kept.reason.startswith("unreadable post")
    assert BounceEvent.objects.count() == 0


def test_a_broken_sendgrid_body_without_credentials_is_refused_unread(client) -> None:  # noqa: ANN001
    assert sendgrid_post(client, "esp:guessed", name="broken/not_json.txt").status_code == 400
    assert QuarantinedMessage.objects.count() == 0


def test_an_unknown_sendgrid_event_replayed_is_quarantined_once(client) -> None:  # noqa: ANN001
    for _ in range(3):
        assert sendgrid_post(client, name="sendgrid_unknown_event.json").status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert kept.provider_event_id == "Bg4ZI7SA-unknown-type=="
    assert "unexpected event type" in kept.reason


def postmark_post(client, body: bytes, **auth: str):  # noqa: ANN001, ANN201
    return client.post(
        "/webhooks/postmark/tracking/", body, content_type="application/json",
        **(auth or basic_auth()),
    )  # fmt: skip


@pytest.mark.parametrize("name", ["not_json.txt", "json_array_of_numbers.json", "latin1.json"])
def test_a_postmark_body_that_is_not_an_event_is_quarantined_whole(client, name: str) -> None:  # noqa: ANN001
    body = (PAYLOADS / "broken" / name).read_bytes()
    assert postmark_post(client, body).status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert bytes(kept.raw) == body and kept.provider == "postmark"
    assert kept.reason.startswith("unreadable post")


def test_a_postmark_event_anymail_cannot_read_is_quarantined_once(client) -> None:  # noqa: ANN001
    body = (PAYLOADS / "postmark_bad_date.json").read_bytes()
    for _ in range(2):
        assert postmark_post(client, body).status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert kept.provider_event_id == "4323372036854775001"
    assert kept.reason.startswith("unreadable event: TypeError")


def test_a_mailgun_event_anymail_cannot_read_is_quarantined(client) -> None:  # noqa: ANN001
    assert mailgun_post(client, "mailgun_event_without_type.json").status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert (kept.provider, kept.provider_event_id) == ("mailgun", "mg-no-event-type")
    assert json.loads(bytes(kept.raw))["event-data"]["severity"] == "permanent"
    assert BounceEvent.objects.count() == 0


@pytest.mark.parametrize("name", ["not_json.txt", "json_array_of_numbers.json", "latin1.json"])
def test_a_mailgun_body_whose_signature_cannot_be_read_is_refused(client, name: str) -> None:  # noqa: ANN001
    # Mailgun's signature is inside the body: one that cannot be read is not authentic.
    body = (PAYLOADS / "broken" / name).read_bytes()
    response = client.post(
        "/webhooks/mailgun/tracking/", body, content_type="application/json", **basic_auth()
    )
    assert response.status_code == 400
    assert QuarantinedMessage.objects.count() == 0 and BounceEvent.objects.count() == 0


@pytest.mark.parametrize("message", ["{{{", "[1, 2]", "null"])
def test_a_signed_sns_notification_whose_message_is_not_an_event_is_quarantined(
    client,  # noqa: ANN001
    message: str,
) -> None:
    response = sns_post(client, message)
    assert response.status_code == 200
    kept = QuarantinedMessage.objects.get()
    assert kept.provider == "ses" and kept.reason.startswith("unreadable")
    assert BounceEvent.objects.count() == 0


def test_an_ses_event_anymail_cannot_read_is_quarantined_and_the_next_applies(client) -> None:  # noqa: ANN001
    broken = load("ses_bounce.json")
    broken["bounce"]["bouncedRecipients"] = [{"status": "5.1.1"}]  # no emailAddress
    assert sns_post(client, broken).status_code == 200
    assert sns_post(client, load("ses_transient.json")).status_code == 200
    assert QuarantinedMessage.objects.get().reason.startswith("unreadable event")
    assert events() == [("ses", "mary@example.com", "soft", "4.2.2")]


@pytest.mark.parametrize("name", ["not_json.txt", "json_array_of_numbers.json", "latin1.json"])
def test_an_sns_body_that_cannot_be_verified_is_refused(client, name: str) -> None:  # noqa: ANN001
    response = client.post(
        "/webhooks/amazon_ses/tracking/",
        (PAYLOADS / "broken" / name).read_bytes(),
        content_type="text/plain",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID="x",
        **basic_auth(),
    )
    assert response.status_code == 400
    assert QuarantinedMessage.objects.count() == 0


# "delivered": not a bounce, counted in the statistics log once per provider event.


def delivered() -> list[dict]:
    return list(
        TrackingEvent.objects.filter(kind="delivered").values(
            "account_id", "campaign_id", "subscriber_id", "delivery_id", "recipient_domain",
            "details",
        )
    )  # fmt: skip


def test_a_mailgun_delivered_event_is_logged_once_for_its_delivery(client, owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "alice@example.com")
    payload = load("mailgun_delivered.json")
    # Mailgun reports the Message-ID the message was sent with: ours names the delivery.
    payload["event-data"]["message"]["headers"]["message-id"] = message_id_of(delivery)[1:-1]

    for _ in range(2):  # Mailgun retries a post it thinks failed
        assert mailgun_post(client, "mailgun_delivered.json", payload=payload).status_code == 200

    assert delivered() == [
        {
            "account_id": owner.id,
            "campaign_id": delivery.campaign_id,
            "subscriber_id": delivery.subscriber_id,
            "delivery_id": delivery.id,
            "recipient_domain": "example.com",
            "details": {"provider": "mailgun"},
        }
    ]
    assert not BounceEvent.objects.exists() and not QuarantinedMessage.objects.exists()


def test_a_delivery_report_posted_again_after_the_daily_prune_still_counts_once(
    client, owner, settings
) -> None:  # noqa: ANN001
    settings.PROVIDER_RECEIPT_KEEP_DAYS = 30
    delivery = sent_to(owner, "alice@example.com")
    payload = load("mailgun_delivered.json")
    payload["event-data"]["message"]["headers"]["message-id"] = message_id_of(delivery)[1:-1]
    assert mailgun_post(client, "mailgun_delivered.json", payload=payload).status_code == 200
    # A receipt from before the keep window, which no ESP will post again.
    ancient = ProviderEventReceipt.objects.create(provider="mailgun", provider_event_id="old")
    ProviderEventReceipt.objects.filter(id=ancient.id).update(
        received_at=timezone.now() - datetime.timedelta(days=31)
    )

    assert tasks.prune_provider_receipts() == 1

    assert mailgun_post(client, "mailgun_delivered.json", payload=payload).status_code == 200
    assert len(delivered()) == 1
    assert list(ProviderEventReceipt.objects.values_list("provider", flat=True)) == ["mailgun"]


def test_a_postmark_delivery_without_an_event_id_is_logged_once(client, owner) -> None:  # noqa: ANN001
    body = (PAYLOADS / "postmark_delivery.json").read_bytes()
    # Mail someone else sent through the same Postmark server: nothing of ours to count.
    assert postmark_post(client, body).status_code == 200
    assert delivered() == []

    delivery = sent_to(owner, "john@example.com")
    for _ in range(2):
        assert postmark_post(client, body).status_code == 200

    # Postmark's own MessageID is not ours: the address names the subscriber and account.
    [logged] = delivered()
    assert (logged["account_id"], logged["subscriber_id"]) == (owner.id, delivery.subscriber_id)
    assert logged["details"] == {"provider": "postmark"}
    assert not BounceEvent.objects.exists() and not QuarantinedMessage.objects.exists()
