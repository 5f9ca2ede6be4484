"""Copy buttons in a real browser: one script serves every page that has them, copies the
field's value or the element's text, and shows buttons that need JavaScript only with it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.urls import reverse

from sending import domains
from tests.factories import PASSWORD, MailingListFactory, SignupFormFactory

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def page(live_server) -> Iterator[object]:  # noqa: ANN001
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        context = browser.new_context()
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        try:
            yield page
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def log_in(page, live_server, user) -> None:  # noqa: ANN001
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def copied(page, selector: str) -> str:  # noqa: ANN001
    button = page.locator(selector)
    button.click()
    page.wait_for_function("s => document.querySelector(s).textContent === 'Copied'", arg=selector)
    return page.evaluate("navigator.clipboard.readText()")


def test_the_embed_snippet_and_a_dns_record_are_copied(live_server, page, owner) -> None:  # noqa: ANN001
    form = SignupFormFactory(account=owner)
    form.lists.set([MailingListFactory(owner=owner)])
    domain = domains.create("news.example.com", account=owner)
    log_in(page, live_server, owner)

    page.goto(live_server.url + reverse("lists:form-detail", args=[form.uuid]))
    snippet = page.locator("#snippet-html").input_value()
    assert copied(page, "[data-copy-target=snippet-html]") == snippet

    page.goto(live_server.url + reverse("sending:domain-detail", args=[domain.uuid]))
    # Hidden in the page's HTML (useless without JavaScript), shown by the script.
    button = "[data-copy-target=record-value-1]"
    assert page.locator(button).is_visible()
    value = page.locator("#record-value-1").inner_text().strip()
    assert copied(page, button) == value == domains.records(domain)[0].value
    assert page.errors == []
