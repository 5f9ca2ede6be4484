"""Freezing: one document, CSS inlined without fetching, links numbered, text part,
attachments encoded once, merge checked."""

from __future__ import annotations

import base64
import email
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.base import ContentFile

from campaigns import freezing, merge
from campaigns.models import Attachment, Campaign, Link
from tests.factories import CampaignFactory, EmailTemplateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(owner) -> Campaign:  # noqa: ANN001
    return CampaignFactory(account=owner)


def test_css_is_inlined_into_the_frozen_document(campaign: Campaign) -> None:
    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert 'style="color:#123456"' in campaign.frozen_html.replace(" ", "")
    assert "<style" not in campaign.frozen_html


def test_tracked_links_are_numbered_and_stored(owner) -> None:  # noqa: ANN001
    body = (
        '<a href="https://example.com/one">1</a> <a href="mailto:x@example.com">m</a>'
        ' <a href="https://example.com/two?a=1&amp;b=2">2</a> <a href="https://example.com/one">1</a>'
        ' <a href="https://example.com/?e={{ subscriber.email }}">personal</a>'
    )
    campaign = CampaignFactory(account=owner, body=body)
    freezing.freeze(campaign)
    links = list(Link.objects.filter(campaign=campaign).values_list("index", "url"))
    assert links == [(1, "https://example.com/one"), (2, "https://example.com/two?a=1&b=2")]
    campaign.refresh_from_db()
    assert campaign.frozen_html.count("{{ tracking.l1 }}") == 2
    assert "{{ tracking.l2 }}" in campaign.frozen_html
    assert 'href="mailto:x@example.com"' in campaign.frozen_html
    assert "?e={{ subscriber.email }}" in campaign.frozen_html
    assert "{{ tracking.open }}" in campaign.frozen_html


def test_untracked_campaign_keeps_links_and_has_no_pixel(owner) -> None:  # noqa: ANN001
    campaign = CampaignFactory(account=owner, track_clicks=False, track_opens=False)
    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert 'href="https://example.com/a"' in campaign.frozen_html
    assert "tracking" not in campaign.frozen_html
    assert not Link.objects.filter(campaign=campaign).exists()


def test_text_part_is_made_from_the_html(campaign: Campaign) -> None:
    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert "Hi {{ subscriber.name }}, read this (https://example.com/a)." in campaign.frozen_text
    assert "Unsubscribe ({{ unsubscribe_url }})" in campaign.frozen_text
    assert "<" not in campaign.frozen_text


def test_an_edited_text_part_is_kept(owner) -> None:  # noqa: ANN001
    campaign = CampaignFactory(account=owner, text_body="My own words", text_edited=True)
    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert campaign.frozen_text == "My own words"


def test_attachments_are_encoded_once_as_mime_parts(campaign: Campaign) -> None:
    data = bytes(range(256)) * 100
    attachment = Attachment(
        campaign=campaign, name="report é.pdf", size=len(data), content_type="application/pdf"
    )
    attachment.file.save("report.pdf", ContentFile(data), save=False)
    attachment.save()
    freezing.freeze(campaign)
    part = bytes(Attachment.objects.get(pk=attachment.pk).encoded_part)
    parsed = email.message_from_bytes(part)
    assert parsed.get_content_type() == "application/pdf"
    assert parsed.get_filename() == "report é.pdf"
    assert parsed.get_payload(decode=True) == data
    assert all(len(line) <= 76 for line in part.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))
    assert base64.b64decode(part.split(b"\r\n\r\n", 1)[1]) == data
    campaign.refresh_from_db()
    assert merge.load_frozen(campaign).attachments == [part]


def test_freeze_refuses_a_body_that_does_not_merge(owner) -> None:  # noqa: ANN001
    campaign = CampaignFactory(account=owner, body="<p>\n{% include 'x.html' %}</p>")
    with pytest.raises(merge.MergeError) as caught:
        freezing.freeze(campaign)
    assert caught.value.errors == ["Body, line 2: the tag {% include %} is not allowed."]
    campaign.refresh_from_db()
    assert campaign.frozen_at is None


def test_editor_output_is_cleaned_owner_html_is_not(owner) -> None:  # noqa: ANN001
    dirty = '<p onclick="x()">Hi<script>alert(1)</script><iframe src="https://x"></iframe></p>'
    wysiwyg = CampaignFactory(account=owner, body=dirty, body_format="wysiwyg")
    raw = CampaignFactory(account=owner, body=dirty + "<table><tr><td>t</td></tr></table>")
    assert "script" not in freezing.document(wysiwyg)
    assert "onclick" not in freezing.document(wysiwyg)
    assert "iframe" not in freezing.document(wysiwyg)
    assert dirty in freezing.document(raw)


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"p { color: red; }")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def css_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_css_inlining_never_fetches_anything(owner, css_server: str) -> None:  # noqa: ANN001
    layout = (
        f'<html><head><link rel="stylesheet" href="{css_server}/link.css">'
        f"<style>@import url({css_server}/import.css); p {{ margin: 0 }}</style>"
        f'<link rel="stylesheet" href="//127.0.0.1:{css_server.rsplit(":", 1)[1]}/proto.css">'
        '</head><body>{{ content }}<a href="{{ unsubscribe_url }}">u</a>'
        f'<div style="background:url({css_server}/bg.png)"></div></body></html>'
    )
    template = EmailTemplateFactory(account=owner, html=layout)
    campaign = CampaignFactory(account=owner, template=template)
    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert 'style="margin:0"' in campaign.frozen_html.replace(" ", "")
    # A request would have been made by now: premailer's fetches are synchronous.
    assert _Recorder.hits == []


def test_a_scheduled_edit_refreezes_and_a_draft_edit_unfreezes(campaign: Campaign) -> None:
    from campaigns import scheduling

    freezing.freeze(campaign)
    campaign.refresh_from_db()
    assert campaign.is_frozen
    scheduling.edited(campaign)
    campaign.refresh_from_db()
    assert campaign.frozen_at is None
    assert not Link.objects.filter(campaign=campaign).exists()


def test_freeze_of_a_large_campaign_is_fast(owner) -> None:  # noqa: ANN001
    import time

    from campaigns import benchmark

    campaign = CampaignFactory(account=owner, body=benchmark.large_body())
    data = b"\0" * (5 * 1024 * 1024)
    attachment = Attachment(
        campaign=campaign, name="big.bin", size=len(data), content_type="application/octet-stream"
    )
    attachment.file.save("big.bin", ContentFile(data), save=False)
    attachment.save()
    started = time.perf_counter()
    freezing.freeze(campaign)
    elapsed = time.perf_counter() - started
    assert Link.objects.filter(campaign=campaign).count() == 50
    # The target is 1 s on an idle machine; the margin absorbs a busy CI runner.
    assert elapsed < 3.0
