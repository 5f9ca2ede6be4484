"""manage.py receive_bounce, run the way an MTA's pipe transport runs it."""

from __future__ import annotations

import pytest

from bounces.models import BounceEvent, QuarantinedMessage
from lists.models import Subscription
from tests.bounces.inbound import manage
from tests.bounces.returned import message, raw_file, sent_to, verp_address

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_piped_bounce_is_stored_and_applied(owner) -> None:  # noqa: ANN001
    delivery = sent_to(owner, "ann@reader.example")
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example").replace(b"\n", b"\r\n")

    done = manage("receive_bounce", "--recipient", verp_address(delivery), stdin=raw)

    assert done.returncode == 0, done.stderr
    event = BounceEvent.objects.get()
    assert (event.source, event.delivery_id, event.bounce_class) == ("pipe", delivery.id, "hard")
    assert Subscription.objects.get(subscriber=delivery.subscriber).status == "bounced"


def test_a_message_nobody_understands_is_quarantined_and_the_mta_is_told_ok(db) -> None:  # noqa: ANN001
    raw = raw_file("not_a_message.eml")

    done = manage("receive_bounce", stdin=raw)

    assert done.returncode == 0 and b"quarantined" in done.stdout
    kept = QuarantinedMessage.objects.get()
    assert bytes(kept.raw) == raw and kept.source == "pipe"


def test_without_a_database_it_asks_the_mta_to_try_again(db) -> None:  # noqa: ANN001
    raw = message("dsn_user_unknown.eml", recipient="ann@reader.example")

    done = manage("receive_bounce", stdin=raw, DATABASE_URL="postgres://nobody@127.0.0.1:9/none")

    assert done.returncode == 75  # EX_TEMPFAIL: the MTA keeps the message queued
    assert b"try again later" in done.stderr
