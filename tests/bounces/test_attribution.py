"""Which delivery, subscriber and account a returned message is attributed to."""

from __future__ import annotations

import pytest

from bounces import intake
from tests.bounces.returned import message, message_id_of, sent_to, verp_address
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_verp_envelope_recipient_names_the_delivery(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    # The address was forwarded: the DSN names another one, VERP still knows who it was.
    raw = message("dsn_user_unknown.eml", recipient="ann.forward@elsewhere.example")

    [event] = intake.record_message(raw, source="pipe", envelope_recipient=verp_address(delivery))

    assert event.delivery == delivery and event.subscriber == delivery.subscriber
    assert event.campaign == delivery.campaign and event.account == owner


def test_a_verp_address_in_the_returned_headers_is_enough(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example", to=verp_address(delivery))

    [event] = intake.record_message(raw, source="mailbox")

    assert event.delivery == delivery


def test_a_forged_verp_signature_is_not_trusted(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    forged = f"bounces+{delivery.id}-0000000000000000@bounce.mailpanel.example"
    raw = message("dsn_user_unknown.eml", recipient="someone@else.example")

    [event] = intake.record_message(raw, source="pipe", envelope_recipient=forged)

    assert event.delivery is None and event.account is None


def test_the_original_message_id_names_the_delivery(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message(
        "dsn_user_unknown.eml",
        recipient="ann.forward@elsewhere.example",
        message_id=message_id_of(delivery),
    )

    [event] = intake.record_message(raw, source="pipe")

    assert event.delivery == delivery and event.account == owner


def test_a_message_id_with_another_campaigns_uuid_is_not_trusted(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    forged = f"<{'0' * 32}.{delivery.id}@mailpanel.example>"
    raw = message("dsn_user_unknown.eml", recipient="x@elsewhere.example", message_id=forged)

    [event] = intake.record_message(raw, source="pipe")

    assert event.delivery is None


def test_the_failed_address_in_the_body_finds_the_subscriber(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("plain_failure.eml", recipient="ann@reader.example")

    [event] = intake.record_message(raw, source="pipe")

    assert event.subscriber == delivery.subscriber and event.account == owner
    assert event.delivery is None  # one subscriber: no guess about which campaign


def test_an_address_known_to_two_accounts_goes_to_the_one_that_mailed_it_last(owner) -> None:  # noqa: ANN001
    other = UserFactory(username="otto")
    sent_to(owner, "ann@reader.example")
    latest = sent_to(other, "ann@reader.example")

    [event] = intake.record_message(
        message("plain_failure.eml", recipient="ann@reader.example"), source="pipe"
    )

    assert event.delivery == latest and event.account == other


def test_a_provider_event_is_attributed_by_message_id_then_by_address(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    by_id = intake.record_provider_event(
        provider="postmark", event_id="1", recipient="ann@reader.example",
        bounce_class="soft", message_id=message_id_of(delivery).strip("<>"), payload="{}",
    )  # fmt: skip
    by_address = intake.record_provider_event(
        provider="postmark", event_id="2", recipient="ANN@reader.example",
        bounce_class="soft", payload="{}",
    )  # fmt: skip

    assert by_id.delivery == delivery
    assert by_address.delivery is None and by_address.subscriber == delivery.subscriber


def test_a_returned_confirmation_mail_is_attributed_to_its_account(owner) -> None:  # noqa: ANN001
    # Transactional mail has no delivery row: its return path names the account alone, so an
    # address known to two accounts still goes to the one whose mail bounced.
    from lists.models import Subscriber
    from sending import verp

    mine = Subscriber.objects.create(account=owner, email="ann@reader.example")
    Subscriber.objects.create(account=UserFactory(), email="ann@reader.example")
    return_path = verp.message_address(owner.id, verp.message_ref("confirm", "1"), "example.com")
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example")

    [event] = intake.record_message(raw, source="pipe", envelope_recipient=return_path)

    assert event.account == owner and event.subscriber == mine and event.delivery is None
