"""Panel and public views of campaigns and templates: tenancy, forms, previews, sends."""

from __future__ import annotations

import email
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns import scheduling, tasks
from campaigns.models import Attachment, Campaign, EmailTemplate, MediaFile
from lists.models import ListRole
from tests.factories import (
    BlocklistEntryFactory,
    CampaignFactory,
    EmailTemplateFactory,
    MailingListFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailing_list(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner)


@pytest.fixture
def campaign(owner, mailing_list) -> Campaign:  # noqa: ANN001
    return CampaignFactory(account=owner, lists=[mailing_list])


def campaign_urls(campaign: Campaign) -> list[tuple[str, str]]:
    attachment = Attachment.objects.create(
        campaign=campaign, file="attachments/x.txt", name="x.txt", size=1, content_type="text/plain"
    )
    c = campaign.uuid
    gets = ["detail", "edit", "preview", "preview-document"]
    posts = [
        "edit",
        "test-send",
        "attachment-add",
        "schedule",
        "unschedule",
        "pause",
        "resume",
        "cancel",
        "duplicate",
        "delete",
    ]
    urls = [("get", reverse(f"campaigns:{n}", args=[c])) for n in gets]
    urls += [("post", reverse(f"campaigns:{n}", args=[c])) for n in posts]
    urls.append(("post", reverse("campaigns:attachment-delete", args=[c, attachment.uuid])))
    t = campaign.template.uuid
    urls += [
        ("get", reverse("campaigns:template-edit", args=[t])),
        ("get", reverse("campaigns:template-preview", args=[t])),
        ("post", reverse("campaigns:template-edit", args=[t])),
        ("post", reverse("campaigns:template-delete", args=[t])),
    ]
    return urls


def test_owner_reaches_every_campaign_url(client, owner, campaign: Campaign) -> None:  # noqa: ANN001
    client.force_login(owner)
    for method, url in campaign_urls(campaign):
        if method == "get":
            assert getattr(client, method)(url).status_code == 200, url


@pytest.mark.parametrize("who", ["stranger", "delegate"])
def test_other_users_get_404_on_every_url(
    request,
    client,
    campaign: Campaign,
    mailing_list,
    who: str,  # noqa: ANN001
) -> None:
    user = request.getfixturevalue(who)
    if who == "delegate":
        # A manager of the list still does not see the owner's campaigns.
        ListRole.objects.create(mailing_list=mailing_list, user=user, role="manager")
    client.force_login(user)
    for method, url in campaign_urls(campaign):
        assert getattr(client, method)(url).status_code == 404, f"{method} {url}"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert EmailTemplate.objects.filter(pk=campaign.template_id).exists()


def test_index_lists_only_own_campaigns(client, owner, stranger) -> None:  # noqa: ANN001
    mine = CampaignFactory(account=owner, name="Mine")
    CampaignFactory(account=stranger, name="Theirs")
    client.force_login(owner)
    page = client.get(reverse("campaigns:index")).content.decode()
    assert mine.name in page and "Theirs" not in page


def test_create_saves_a_draft(owner_client, owner, mailing_list) -> None:  # noqa: ANN001
    owner_client.get(reverse("campaigns:create"))
    template = EmailTemplate.objects.filter(account=owner).first()
    response = owner_client.post(
        reverse("campaigns:create"),
        {
            "name": "March",
            "subject": "Hi {{ subscriber.name }}",
            "from_email": owner.email,
            "lists": [mailing_list.pk],
            "template": template.pk,
            "body_format": "html",
            "body": '<p>Hello <a href="{{ unsubscribe_url }}">u</a></p>',
            "track_opens": "on",
        },
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(account=owner, name="March")
    assert campaign.status == Campaign.Status.DRAFT
    assert list(campaign.lists.all()) == [mailing_list]
    assert "Hello u ({{ unsubscribe_url }})" in campaign.text_body


def test_sender_must_be_an_address_the_account_may_use(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("campaigns:create"),
        {
            "name": "x",
            "from_email": "ceo@bank.example",
            "body_format": "html",
            "body": "x",
        },
    )
    assert response.status_code == 200
    assert "from_email" in response.context["form"].errors


def test_saving_reports_an_unknown_tag_with_its_line(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("campaigns:edit", args=[campaign.uuid]),
        {
            "name": "x",
            "subject": "s",
            "body_format": "html",
            "body": "<p>a</p>\n<p>{% debug %}</p>",
        },
    )
    assert response.status_code == 200
    assert "Body, line 2: the tag {% debug %} is not allowed." in response.content.decode()
    campaign.refresh_from_db()
    assert "debug" not in campaign.body


def test_switching_format_converts_the_body(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    owner_client.post(
        reverse("campaigns:edit", args=[campaign.uuid]),
        {
            "name": "x",
            "subject": "s",
            "body_format": "text",
            "body": "<p>One <b>two</b></p><p>Three</p>",
        },
    )
    campaign.refresh_from_db()
    assert campaign.body_format == "text"
    assert campaign.body == "One two\n\nThree\n"


def test_editing_is_locked_once_sending_starts(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    response = owner_client.post(
        reverse("campaigns:edit", args=[campaign.uuid]),
        {
            "name": "Changed",
            "subject": "s",
            "body_format": "html",
            "body": "changed",
        },
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.name != "Changed" and campaign.body != "changed"


def test_an_edit_racing_the_dispatcher_does_not_put_the_campaign_back(
    owner_client,
    campaign: Campaign,  # noqa: ANN001
) -> None:
    # The dispatcher starts the campaign after the edit page loaded it and before the
    # edit is written: the edit must lose, and the status stay "sending".
    from django.db import connection

    scheduling.schedule(campaign)
    started = []

    def dispatcher_starts_first(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if not started and sql.startswith('UPDATE "campaigns_campaign"'):
            started.append(True)
            scheduling.start(Campaign.objects.get(pk=campaign.pk))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(dispatcher_starts_first):
        response = owner_client.post(
            reverse("campaigns:edit", args=[campaign.uuid]),
            {"name": "Changed", "subject": "s", "body_format": "html", "body": "changed"},
        )
    assert started and response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    assert campaign.name != "Changed" and campaign.body != "changed"
    assert campaign.is_frozen


def test_an_edit_never_writes_the_status(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        owner_client.post(
            reverse("campaigns:edit", args=[campaign.uuid]),
            {"name": "Changed", "subject": "s", "body_format": "html", "body": "changed"},
        )
    writes = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "campaigns_campaign"')]
    assert writes and not any('"status" =' in sql.split(" WHERE ")[0] for sql in writes)
    campaign.refresh_from_db()
    assert campaign.name == "Changed"


def test_recipient_count_counts_each_subscriber_once(owner_client, owner) -> None:  # noqa: ANN001
    first, second = MailingListFactory(owner=owner), MailingListFactory(owner=owner)
    both = SubscriptionFactory(mailing_list=first).subscriber
    SubscriptionFactory(mailing_list=second, subscriber=both)
    SubscriptionFactory(mailing_list=second, status="unsubscribed")
    blocked = SubscriptionFactory(mailing_list=second).subscriber
    BlocklistEntryFactory(account=owner, value=blocked.email.lower())
    foreign = SubscriptionFactory().mailing_list
    url = reverse("campaigns:recipient-count")
    response = owner_client.get(url, {"lists": [first.pk, second.pk, foreign.pk]})
    assert response.context["count"] == 1


def test_preview_is_a_sandboxed_iframe(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    page = owner_client.get(reverse("campaigns:preview", args=[campaign.uuid])).content.decode()
    (iframe,) = re.findall(r"<iframe[^>]*>", page)
    assert re.search(r"\bsandbox(\s|>|=\"\")", iframe)
    assert "allow-scripts" not in iframe and "allow-same-origin" not in iframe
    document = owner_client.get(reverse("campaigns:preview-document", args=[campaign.uuid]))
    assert document["Content-Security-Policy"].startswith("sandbox;")
    assert "allow-scripts" not in document["Content-Security-Policy"]
    assert document["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_as_a_subscriber_and_with_sample_values(owner_client, owner, campaign) -> None:  # noqa: ANN001
    sub = SubscriptionFactory(
        mailing_list=campaign.lists.get(),
        subscriber=SubscriberFactory(account=owner, name="Zed <z>"),
    )
    url = reverse("campaigns:preview", args=[campaign.uuid])
    sample = owner_client.get(url)
    assert sample.context["subject"] == "Hello Alex Example"
    chosen = owner_client.get(url, {"as": sub.subscriber.email})
    assert chosen.context["subject"] == "Hello Zed <z>"
    assert "Hello Zed &lt;z&gt;" not in chosen.context["text"]  # the text part is not escaped
    labels = {item.label: item.ok for item in chosen.context["checklist"]}
    assert labels["Unsubscribe link"] and labels["Subject line"] and labels["Size under 100 KB"]
    document = owner_client.get(
        reverse("campaigns:preview-document", args=[campaign.uuid]), {"as": sub.subscriber.email}
    )
    assert "Hi Zed &lt;z&gt;" in document.content.decode()


def test_checklist_flags_missing_unsubscribe_and_alt(owner_client, owner) -> None:  # noqa: ANN001
    template = EmailTemplateFactory(account=owner, html="<html><body>{{ content }}</body></html>")
    campaign = CampaignFactory(
        account=owner, template=template, subject="", body='<img src="https://x.example/a.png">'
    )
    page = owner_client.get(reverse("campaigns:preview", args=[campaign.uuid]))
    labels = {item.label: item.ok for item in page.context["checklist"]}
    assert labels == {
        "Subject line": False,
        "Unsubscribe link": False,
        "Size under 100 KB": True,
        "Images have alt text": False,
        "Sender address": True,
        "Sender domain has DKIM set up": False,
        "Postal address": False,
    }


def _dkim_ok(owner_client, campaign: Campaign) -> bool:  # noqa: ANN001
    page = owner_client.get(reverse("campaigns:preview", args=[campaign.uuid]))
    return {item.label: item.ok for item in page.context["checklist"]}[
        "Sender domain has DKIM set up"
    ]


@pytest.mark.parametrize(
    ("whose", "domain", "verified", "ok"),
    [
        ("global", "news.example.com", True, True),
        ("own", "NEWS.example.com", True, True),
        ("own", "news.example.com", False, False),
        ("stranger", "news.example.com", True, False),
        ("global", "example.com", True, False),  # the engine signs only the exact domain
    ],
)
def test_checklist_dkim_needs_a_verified_sending_domain_the_account_may_use(
    owner_client,
    owner,
    stranger,
    whose: str,
    domain: str,
    verified: bool,
    ok: bool,  # noqa: ANN001
) -> None:
    from django.utils import timezone

    from sending.models import SendingDomain

    campaign = CampaignFactory(account=owner, from_email="hello@news.example.com")
    assert not _dkim_ok(owner_client, campaign)
    SendingDomain.objects.create(
        account={"global": None, "own": owner, "stranger": stranger}[whose],
        domain=domain.lower(),
        private_key_encrypted="-",
        verified_at=timezone.now() if verified else None,
    )
    assert _dkim_ok(owner_client, campaign) is ok


def test_checklist_postal_address_of_the_account_or_every_list(owner_client, owner) -> None:  # noqa: ANN001
    with_address = MailingListFactory(owner=owner, postal_address="List Ltd\nHarbour 2")
    without = MailingListFactory(owner=owner)
    campaign = CampaignFactory(account=owner, lists=[with_address, without])
    url = reverse("campaigns:preview", args=[campaign.uuid])

    def postal_ok() -> bool:
        page = owner_client.get(url)
        return {item.label: item.ok for item in page.context["checklist"]}["Postal address"]

    assert not postal_ok()  # the second list's recipients would get none
    campaign.lists.set([with_address])
    assert postal_ok()
    campaign.lists.set([with_address, without])
    owner.postal_address = "Olivia's News\nMain Street 1\n1000 Copenhagen"
    owner.save()
    assert postal_ok()


def test_attachments_refuse_dangerous_types_and_too_much(
    owner_client,
    campaign: Campaign,
    settings,  # noqa: ANN001
) -> None:
    settings.CAMPAIGN_ATTACHMENT_MAX_TOTAL_BYTES = 100
    url = reverse("campaigns:attachment-add", args=[campaign.uuid])
    for name in ("virus.exe", "invoice.pdf.js", "run.BAT", "page.html"):
        owner_client.post(url, {"file": SimpleUploadedFile(name, b"x")})
    assert not campaign.attachments.exists()
    owner_client.post(url, {"file": SimpleUploadedFile("a.pdf", b"x" * 60)})
    owner_client.post(url, {"file": SimpleUploadedFile("b.pdf", b"x" * 60)})
    assert list(campaign.attachments.values_list("name", "size")) == [("a.pdf", 60)]
    detail = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid])).content.decode()
    assert "a.pdf" in detail and "60" in detail


def test_per_file_limit(owner_client, campaign: Campaign, settings) -> None:  # noqa: ANN001
    settings.CAMPAIGN_ATTACHMENT_MAX_FILE_BYTES = 10
    url = reverse("campaigns:attachment-add", args=[campaign.uuid])
    owner_client.post(url, {"file": SimpleUploadedFile("a.pdf", b"x" * 11)})
    assert not campaign.attachments.exists()


def test_schedule_in_the_account_time_zone(owner_client, owner, campaign) -> None:  # noqa: ANN001
    owner.time_zone = "Europe/Copenhagen"
    owner.save()
    owner_client.post(
        reverse("campaigns:schedule", args=[campaign.uuid]),
        {"when": "later", "send_at": "2030-01-10T09:00"},
    )
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.send_at.isoformat() == "2030-01-10T08:00:00+00:00"
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.uuid])).content.decode()
    assert "2030-01-10 09:00 (Europe/Copenhagen)" in page


def test_lifecycle_buttons(owner_client, campaign: Campaign) -> None:  # noqa: ANN001
    def post(name: str) -> None:
        owner_client.post(reverse(f"campaigns:{name}", args=[campaign.uuid]), {"when": "now"})
        campaign.refresh_from_db()

    post("schedule")
    assert campaign.status == "scheduled"
    post("pause")
    assert campaign.status == "paused"
    post("resume")
    assert campaign.status == "scheduled"
    post("unschedule")
    assert campaign.status == "draft"
    post("cancel")
    assert campaign.status == "draft"  # a draft cannot be cancelled
    owner_client.post(reverse("campaigns:duplicate", args=[campaign.uuid]))
    assert Campaign.objects.filter(account=campaign.account).count() == 2


def test_test_send_is_queued_and_mails_a_marked_copy(
    owner_client,
    campaign: Campaign,
    smtp_server,
    settings,  # noqa: ANN001
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    from sending.models import Relay

    Relay.objects.create(name="loop", host=smtp_server.host, port=smtp_server.port, security="none")
    SubscriptionFactory(
        mailing_list=campaign.lists.get(),
        subscriber=SubscriberFactory(account=campaign.account, name="First"),
    )
    url = reverse("campaigns:test-send", args=[campaign.uuid])
    with django_capture_on_commit_callbacks() as callbacks:
        owner_client.post(url, {"addresses": "a@example.org, b@example.org"})
    assert len(callbacks) == 1
    tasks.send_test(campaign.pk, ["a@example.org", "b@example.org"])
    messages = smtp_server.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in messages) == ["a@example.org", "b@example.org"]
    parsed = email.message_from_bytes(messages[0].data)
    assert parsed["X-Mailpanel-Test"] == "yes"
    assert parsed["Subject"] == "[Test] Hello First"
    assert parsed["List-Unsubscribe"].strip().startswith("<http://")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_test_send_refuses_more_than_ten(
    owner_client,
    campaign: Campaign,  # noqa: ANN001
    django_capture_on_commit_callbacks,
) -> None:  # noqa: ANN001
    addresses = ",".join(f"t{i}@example.org" for i in range(11))
    with django_capture_on_commit_callbacks() as callbacks:
        owner_client.post(
            reverse("campaigns:test-send", args=[campaign.uuid]), {"addresses": addresses}
        )
    assert callbacks == []


def test_web_version_is_public_sandboxed_and_neutral(client, owner, campaign) -> None:  # noqa: ANN001
    url = reverse("campaign_public:web-version", args=[campaign.uuid])
    assert client.get(url).status_code == 404  # a draft has no web version
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("sandbox;")
    body = response.content.decode()
    assert "Hi , read" in body
    assert 'href="https://example.com/a"' in body  # links as written, not tracked
    assert "/t/c/" not in body and "/t/o/" not in body


def test_web_version_stays_for_a_campaign_cancelled_while_sending(client, owner, campaign) -> None:  # noqa: ANN001
    # Its recipients so far have "view in browser" links in their mail.
    url = reverse("campaign_public:web-version", args=[campaign.uuid])
    scheduling.schedule(campaign)
    scheduling.start(campaign)
    scheduling.cancel(campaign)
    assert client.get(url).status_code == 200
    never_sent = CampaignFactory(account=owner, lists=list(campaign.lists.all()))
    scheduling.schedule(never_sent)
    scheduling.cancel(never_sent)
    never_url = reverse("campaign_public:web-version", args=[never_sent.uuid])
    assert client.get(never_url).status_code == 404


def test_archive_shows_only_published_sent_campaigns(client, owner, mailing_list) -> None:  # noqa: ANN001
    from campaigns import preview

    published = CampaignFactory(
        account=owner, lists=[mailing_list], publish_in_archive=True, subject="Published one"
    )
    hidden = CampaignFactory(account=owner, lists=[mailing_list], subject="Hidden one")
    for c in (published, hidden):
        scheduling.schedule(c)
        scheduling.start(c)
        scheduling.finish(c)
    url = reverse("campaign_public:archive", args=[preview.archive_token(owner.pk)])
    response = client.get(url)
    assert response["Content-Security-Policy"].startswith("sandbox;")
    page = response.content.decode()
    assert "Published one" in page and "Hidden one" not in page
    assert (
        client.get(url.replace(preview.archive_token(owner.pk), f"{owner.pk}.x")).status_code == 404
    )


def test_editor_image_upload_goes_to_the_account_library(owner_client, owner, client) -> None:  # noqa: ANN001
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, "PNG")
    upload = SimpleUploadedFile("dot.png", buffer.getvalue(), content_type="image/png")
    response = owner_client.post(reverse("campaigns:media-upload"), {"upload": upload})
    assert response.status_code == 200
    media = MediaFile.objects.get(account=owner)
    assert response.json()["url"].endswith(f"/c/media/{media.uuid}/dot.png")
    public = client.get(response.json()["url"].split("8000", 1)[-1])
    assert public.status_code == 200 and public["Content-Type"] == "image/png"


def test_editor_upload_refuses_non_images(owner_client, owner) -> None:  # noqa: ANN001
    fake = SimpleUploadedFile("x.png", b"<svg onload=alert(1)>", content_type="image/png")
    response = owner_client.post(reverse("campaigns:media-upload"), {"upload": fake})
    assert response.status_code == 400
    assert not MediaFile.objects.exists()


def test_templates_page_copies_the_starting_templates(owner_client, owner) -> None:  # noqa: ANN001
    owner_client.get(reverse("campaigns:template-index"))
    names = set(EmailTemplate.objects.filter(account=owner).values_list("name", flat=True))
    assert names == {"Plain", "Newsletter with header and footer", "Announcement"}
    owner_client.get(reverse("campaigns:template-index"))
    assert EmailTemplate.objects.filter(account=owner).count() == 3


def test_starting_templates_freeze_cleanly(owner, mailing_list) -> None:  # noqa: ANN001
    from campaigns import designs, freezing

    for key in designs.STARTING:
        template = EmailTemplateFactory(account=owner, html=designs.starting_html(key))
        campaign = CampaignFactory(account=owner, template=template, lists=[mailing_list])
        freezing.freeze(campaign)
        campaign.refresh_from_db()
        assert "{{ unsubscribe_url }}" in campaign.frozen_html
        assert "<style" not in campaign.frozen_html or "@media" in campaign.frozen_html


def test_template_without_content_placeholder_is_refused(owner_client, owner) -> None:  # noqa: ANN001
    template = EmailTemplateFactory(account=owner)
    response = owner_client.post(
        reverse("campaigns:template-edit", args=[template.uuid]),
        {"name": "x", "html": "<html>{% load x %}</html>"},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["html"]
    assert any("{{ content }}" in e for e in errors)
    assert any("{% load %}" in e for e in errors)


def test_template_previews_are_sandboxed(owner_client, owner) -> None:  # noqa: ANN001
    template = EmailTemplateFactory(account=owner)
    page = owner_client.get(reverse("campaigns:template-edit", args=[template.uuid]))
    (iframe,) = re.findall(r"<iframe[^>]*>", page.content.decode())
    assert re.search(r"\bsandbox(\s|>|=\"\")", iframe)
    assert "allow-scripts" not in iframe and "allow-same-origin" not in iframe
    document = owner_client.get(reverse("campaigns:template-preview", args=[template.uuid]))
    assert document["Content-Security-Policy"].startswith("sandbox;")
    assert "{{" not in document.content.decode()


def test_media_library_lists_only_own_images(client, owner, stranger) -> None:  # noqa: ANN001
    MediaFile.objects.create(account=stranger, file="x/their.png", name="their.png", size=1,
                             content_type="image/png")  # fmt: skip
    MediaFile.objects.create(account=owner, file="x/mine.png", name="mine.png", size=1,
                             content_type="image/png")  # fmt: skip
    client.force_login(owner)
    page = client.get(reverse("campaigns:media-index")).content.decode()
    assert "mine.png" in page and "their.png" not in page
