"""The campaign editor in a real browser: CKEditor loads under the panel's CSP, typing
into it and saving stores the body."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from tests.factories import PASSWORD, CampaignFactory, MailingListFactory

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def page(live_server) -> Iterator[object]:  # noqa: ANN001
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the
    # test body are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        try:
            yield page
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_owner_types_into_the_editor_and_saves(live_server, page, owner) -> None:  # noqa: ANN001
    campaign = CampaignFactory(
        account=owner, body_format="wysiwyg", body="<p>Start.</p>",
        lists=[MailingListFactory(owner=owner)],
    )  # fmt: skip
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", owner.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    page.goto(live_server.url + reverse("campaigns:edit", args=[campaign.uuid]))
    editable = page.locator(".ck-editor__editable")
    editable.wait_for(state="visible", timeout=15000)
    assert "Start." in editable.inner_text()
    editable.click()
    page.keyboard.press("End")
    page.keyboard.type(" Typed in the browser for {{ subscriber.name }}.")
    page.click("#save-campaign")
    page.wait_for_load_state("load")
    page.locator(".ck-editor__editable").wait_for(state="visible", timeout=15000)

    campaign.refresh_from_db()
    assert "Typed in the browser for {{ subscriber.name }}." in campaign.body
    assert campaign.body.startswith("<p>")
    assert Campaign.objects.get(pk=campaign.pk).body_format == "wysiwyg"
    csp_errors = [e for e in page.errors if "Content Security Policy" in e]
    assert csp_errors == []
