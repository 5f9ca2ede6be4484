"""End to end in Chromium: a page on one loopback port embeds a mailpanel form served on another.

The script embed signs up, the confirmation mail arrives at a real SMTP server, its
link is opened and confirmed by the button; the plain HTML embed works without JS.
"""

from __future__ import annotations

import email
import functools
import os
import threading
from collections.abc import Iterator
from email import policy
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import RequestFactory

from lists.models import Subscription
from lists.views.public import embed_snippets
from tests.factories import MailingListFactory, SignupFormFactory, UserFactory
from tests.lists.test_signup_support import clean_cache, fake_dns, resolv_conf  # noqa: F401

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium at /usr/bin/chromium"),
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def third_party_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A tiny static site on its own loopback port: another origin than mailpanel."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[object]:
    # Playwright's sync API runs an event loop in this thread; Django's ORM checks refuse
    # queries there unless told that this test thread is synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def mail_settings(settings, smtp_server, live_server, celery_eager):  # noqa: ANN001, ANN201, F811
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.SITE_URL = live_server.url
    return settings


def snippets_for(form, live_server) -> dict[str, str]:  # noqa: ANN001
    host = live_server.url.removeprefix("http://")
    request = RequestFactory().get("/", HTTP_HOST=host)
    return embed_snippets(request, form)


def confirm_link(message_bytes: bytes) -> str:
    message = email.message_from_bytes(message_bytes, policy=policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    return next(word for word in text.split() if "/s/confirm/" in word)


def test_script_embed_signup_mail_and_confirm_in_chromium(
    live_server, third_party_site, browser, smtp_server, mail_settings
):
    owner = UserFactory(username="olivia")
    mailing_list = MailingListFactory(owner=owner, name="Garden News")
    form = SignupFormFactory(
        account=owner,
        lists=[mailing_list],
        field_config=[{"key": "name", "label": "Your name", "required": False}],
        check_inbox_text="Nearly there: check your inbox.",
    )
    site_url, site_dir = third_party_site
    (site_dir / "index.html").write_text(
        "<!doctype html><html><body><h1>A blog</h1>"
        + snippets_for(form, live_server)["script"]
        + "</body></html>"
    )
    page = browser.new_page()
    page.goto(f"{site_url}/index.html")
    page.fill("input[name=email]", "reader@example.org")
    page.fill("input[name=name]", "Reader")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Nearly there: check your inbox.", timeout=15000)
    assert page.url.startswith(site_url)

    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["reader@example.org"]
    link = confirm_link(message.data)
    assert link.startswith(live_server.url)
    assert b"Reader" not in message.data

    page.goto(link)
    assert Subscription.objects.get().status == "pending"
    page.click("button[type=submit]")
    page.wait_for_selector("text=is confirmed", timeout=15000)
    subscription = Subscription.objects.get()
    assert subscription.status == "confirmed"
    assert subscription.subscriber.consent["form"] == str(form.uuid)


def test_plain_html_embed_works_without_javascript(
    live_server, third_party_site, browser, smtp_server, mail_settings
):
    # The minimum fill time is on: the stamp-less plain embed still goes through.
    mail_settings.SIGNUP_MIN_FILL_SECONDS = 30
    owner = UserFactory(username="olivia")
    form = SignupFormFactory(
        account=owner,
        lists=[MailingListFactory(owner=owner)],
        check_inbox_text="Nearly there: check your inbox.",
    )
    site_url, site_dir = third_party_site
    (site_dir / "plain.html").write_text(
        "<!doctype html><html><body>" + snippets_for(form, live_server)["html"] + "</body></html>"
    )
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site_url}/plain.html")
    page.fill("input[name=email]", "nojs@example.org")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Nearly there: check your inbox.", timeout=15000)
    assert page.url.startswith(live_server.url)
    assert Subscription.objects.get().subscriber.email == "nojs@example.org"
    smtp_server.wait_for(1)
    assert len(smtp_server.messages) == 1
    context.close()


def test_the_form_editor_previews_unsaved_values_live(live_server, browser, client):
    owner = UserFactory(username="olivia")
    form = SignupFormFactory(account=owner, lists=[MailingListFactory(owner=owner)], title="Old")
    client.force_login(owner)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/lists/forms/{form.uuid}/edit/")
    page.fill("input[name=title]", "Typed, not saved")
    preview = page.frame_locator("iframe[name=form-preview]")
    preview.locator("h1", has_text="Typed, not saved").wait_for(timeout=15000)
    form.refresh_from_db()
    assert form.title == "Old"
    context.close()


def test_the_owner_previews_a_disabled_form_and_a_preview_post_saves_nothing(
    live_server, browser, client, smtp_server, mail_settings
):
    owner = UserFactory(username="olivia")
    form = SignupFormFactory(
        account=owner,
        lists=[MailingListFactory(owner=owner)],
        title="Closed for now",
        check_inbox_text="Nearly there: check your inbox.",
        enabled=False,
    )
    client.force_login(owner)
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/lists/forms/{form.uuid}/")

    for title in ("plain HTML form", "script embed", "hosted page"):
        frame = page.frame_locator(f'iframe[title="Preview of the {title}"]')
        frame.locator("input[name=email]").fill(f"{title.split()[0].lower()}@example.org")
        frame.locator("button[type=submit]").click()
        frame.locator("text=Nearly there: check your inbox.").wait_for(timeout=15000)
        frame.locator("text=Preview: nothing was saved").first.wait_for(timeout=15000)

    assert not Subscription.objects.exists()
    assert smtp_server.messages == []
    context.close()
