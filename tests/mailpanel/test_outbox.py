from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives, send_mail
from django.test import Client
from django.urls import reverse

from mailpanel import outbox
from tests.services import free_port


@pytest.fixture
def running_outbox(outbox_dir: Path, settings):  # noqa: ANN001, ANN201
    port = free_port()
    controller = outbox.make_controller("127.0.0.1", port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    try:
        yield controller
    finally:
        controller.stop()


def wait_for_messages(count: int) -> list[Path]:
    deadline = time.monotonic() + 10
    while len(outbox.list_paths()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return outbox.list_paths()


def only_key(client: Client) -> str:
    response = client.get(reverse("outbox"))
    assert response.status_code == 200
    (summary,) = response.context["page_obj"].object_list
    return summary.key


def test_outbox_receives_and_shows_a_message_sent_with_send_mail(
    running_outbox, operator_client
) -> None:  # noqa: ANN001
    send_mail("Hello from mailpanel", "Plain words.", "panel@example.com", ["reader@example.org"])
    assert len(wait_for_messages(1)) == 1

    key = only_key(operator_client)
    index = operator_client.get(reverse("outbox"))
    assert b"Hello from mailpanel" in index.content
    page = operator_client.get(reverse("outbox-message", args=[key]))
    assert page.status_code == 200
    assert b"Plain words." in page.content
    assert b"reader@example.org" in page.content
    assert b"This message has no HTML part." in page.content


def test_html_part_is_served_sandboxed_for_the_iframe(running_outbox, operator_client) -> None:  # noqa: ANN001
    message = EmailMultiAlternatives("Rich", "text part", "panel@example.com", ["r@example.org"])
    message.attach_alternative("<p>html part</p><script>alert(1)</script>", "text/html")
    message.attach("report.csv", "a,b\n1,2\n", "text/csv")
    message.send()
    wait_for_messages(1)
    key = only_key(operator_client)

    page = operator_client.get(reverse("outbox-message", args=[key]))
    assert b"<iframe" in page.content and b"sandbox" in page.content
    assert b"report.csv" in page.content
    # The page itself never contains the mail's markup unescaped.
    assert b"<script>alert(1)</script>" not in page.content

    html = operator_client.get(reverse("outbox-message-html", args=[key]))
    assert html.content.startswith(b"<p>html part</p>")
    assert html["Content-Security-Policy"].startswith("sandbox")
    assert html["X-Frame-Options"] == "SAMEORIGIN"

    raw = operator_client.get(reverse("outbox-message-raw", args=[key]))
    assert b"Subject: Rich" in raw.content
    assert raw["Content-Disposition"].startswith("attachment")


def test_outbox_is_for_operators_only(running_outbox, client, owner) -> None:  # noqa: ANN001
    send_mail("Secret", "body", "panel@example.com", ["r@example.org"])
    wait_for_messages(1)
    key = outbox.list_paths()[0].name.split(":")[0]
    client.force_login(owner)
    assert client.get(reverse("outbox")).status_code == 404
    assert client.get(reverse("outbox-message", args=[key])).status_code == 404
    assert client.get(reverse("outbox-message-html", args=[key])).status_code == 404


def test_unknown_or_malformed_keys_are_404(outbox_dir: Path, operator_client) -> None:  # noqa: ANN001
    assert operator_client.get(reverse("outbox-message", args=["nope"])).status_code == 404
    assert operator_client.get("/outbox/..%2F..%2Fetc%2Fpasswd/").status_code == 404


def test_empty_outbox_tells_what_to_do(outbox_dir: Path, operator_client) -> None:  # noqa: ANN001
    response = operator_client.get(reverse("outbox"))
    assert b"The outbox is empty" in response.content


def test_clearing_the_outbox(running_outbox, operator_client) -> None:  # noqa: ANN001
    send_mail("One", "body", "panel@example.com", ["r@example.org"])
    wait_for_messages(1)
    response = operator_client.post(reverse("outbox-clear"))
    assert response.status_code == 302
    assert outbox.list_paths() == []


def test_prune_removes_only_old_messages(running_outbox) -> None:  # noqa: ANN001
    import os
    from datetime import timedelta

    send_mail("Old", "body", "panel@example.com", ["r@example.org"])
    send_mail("New", "body", "panel@example.com", ["r@example.org"])
    old, new = wait_for_messages(2)  # in any order: which one is "old" is set below
    past = time.time() - 30 * 86400
    os.utime(old, (past, past))
    assert outbox.prune(timedelta(days=14)) == 1
    assert outbox.list_paths() == [new]
    assert mail.outbox == []  # nothing went through the test backend: it was real SMTP
