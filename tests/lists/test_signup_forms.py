"""The form builder in the panel: creating forms, embeds, list texts, and tenancy."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from lists.models import ListRole, SignupForm, Subscriber, Subscription
from tests.factories import CustomFieldFactory, MailingListFactory, SignupFormFactory
from tests.lists.test_signup_support import *  # noqa: F403

pytestmark = pytest.mark.django_db


def form_post(lists, **extra) -> dict:  # noqa: ANN001
    data = {
        "name": "Website footer",
        "lists": [str(ml.id) for ml in lists],
        "title": "Join us",
        "button_text": "Join",
        "success_text": "Welcome!",
        "check_inbox_text": "Check your inbox",
        "show_0": "required",
        "label_0": "First name",
        "enabled": "on",
    }
    data.update(extra)
    return data


def test_an_owner_creates_a_form_and_sees_three_embeds(owner_client, owner, mailing_list):
    CustomFieldFactory(account=owner, key="city", label="City", in_forms=True)
    response = owner_client.post(
        reverse("lists:form-create"), form_post([mailing_list], show_1="optional", label_1="Town")
    )
    assert response.status_code == 302
    form = SignupForm.objects.get()
    assert form.account == owner and list(form.lists.all()) == [mailing_list]
    assert form.field_config == [
        {"key": "name", "label": "First name", "required": True},
        {"key": "field:city", "label": "Town", "required": False},
    ]
    page = owner_client.get(response["Location"]).content.decode()
    assert f"/s/f/{form.uuid}/" in page and "embed.js" in page
    assert "data-copy-target" in page and 'sandbox="allow-forms allow-scripts"' in page
    assert "<script>" not in page


def test_a_form_cannot_use_another_accounts_list(owner_client, mailing_list):
    foreign = MailingListFactory()
    response = owner_client.post(reverse("lists:form-create"), form_post([foreign]))
    assert response.status_code == 200 and not SignupForm.objects.exists()


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://files.example/x", "mailto:a@example.org"]
)
def test_redirect_urls_must_be_http(owner_client, mailing_list, url):
    response = owner_client.post(
        reverse("lists:form-create"), form_post([mailing_list], redirect_url=url)
    )
    assert response.status_code == 200 and not SignupForm.objects.exists()


@pytest.mark.parametrize("name", ["lists:form-detail", "lists:form-edit"])
def test_stranger_gets_404_on_the_owners_form(client, stranger, form, name):
    client.force_login(stranger)
    assert client.get(reverse(name, args=[form.uuid])).status_code == 404
    client.force_login(form.account)
    assert client.get(reverse(name, args=[form.uuid])).status_code == 200


def test_stranger_cannot_delete_or_change_the_owners_form(client, stranger, form, mailing_list):
    client.force_login(stranger)
    assert client.post(reverse("lists:form-delete", args=[form.uuid])).status_code == 404
    edit = client.post(reverse("lists:form-edit", args=[form.uuid]), form_post([mailing_list]))
    assert edit.status_code == 404
    form.refresh_from_db()
    assert form.title != "Join us"
    client.force_login(form.account)
    assert client.post(reverse("lists:form-delete", args=[form.uuid])).status_code == 302
    assert not SignupForm.objects.exists()


def test_the_form_index_lists_only_the_accounts_forms(client, stranger, form):
    SignupFormFactory(account=stranger, name="Stranger's form")
    client.force_login(form.account)
    page = client.get(reverse("lists:form-index")).content.decode()
    assert form.name in page and "Stranger&#x27;s form" not in page


def test_list_texts_stranger_404_viewer_403_owner_saves(client, stranger, delegate, mailing_list):
    url = reverse("lists:list-public", args=[mailing_list.uuid])
    data = {
        "logo_url": "https://cdn.example/logo.png",
        "brand_color": "#112233",
        "text_confirm_subject": "Confirm {list}",
    }
    client.force_login(stranger)
    assert client.get(url).status_code == 404
    ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="viewer")
    client.force_login(delegate)
    assert client.post(url, data).status_code == 403
    client.force_login(mailing_list.owner)
    assert client.post(url, {**data, "brand_color": "red;}"}).status_code == 200
    assert client.post(url, data).status_code == 302
    mailing_list.refresh_from_db()
    assert mailing_list.texts == {"confirm_subject": "Confirm {list}"}
    assert mailing_list.brand_color == "#112233"


def preview_frames(owner_client, form) -> list[str]:  # noqa: ANN001
    """The src of every preview frame on the form's detail page."""
    page = owner_client.get(reverse("lists:form-detail", args=[form.uuid])).content.decode()
    return re.findall(r'<iframe title="Preview[^"]*" sandbox="[^"]*" src="([^"]+)"', page)


def test_the_preview_pages_embed_the_form(owner_client, client, form):
    html, script, hosted = preview_frames(owner_client, form)
    client.logout()  # the frames are sandboxed: no session reaches them
    for path in (html, script, hosted):
        response = client.get(path)
        assert response.status_code == 200
        assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
        assert "Preview: nothing was saved" in response.content.decode()
    page = client.get(html).content.decode()
    assert re.search(r'action="http://testserver/s/p/[^/"]+/"', page)
    # The plain embed is pasted once: it carries no fill-time stamp (lists.signup.stamp_state).
    assert 'name="mp_ts"' not in page
    assert 'data-mailpanel-form="http://testserver/s/p/' in client.get(script).content.decode()


def test_a_disabled_forms_public_pages_are_refused_but_its_owner_previews_it(
    owner_client, client, form
):
    SignupForm.objects.filter(id=form.id).update(enabled=False)
    assert client.get(reverse("public:form", args=[form.uuid])).status_code == 404
    assert client.get(reverse("public:form-config", args=[form.uuid])).status_code == 404
    frames = preview_frames(owner_client, form)
    assert len(frames) == 3
    for path in frames:
        response = client.get(path)
        assert response.status_code == 200
        assert "not available" not in response.content.decode()
        assert (
            form.title in response.content.decode() or "mailpanel-form" in response.content.decode()
        )


def test_a_post_to_the_preview_shows_the_success_text_and_saves_nothing(
    owner_client, client, form, mailing_list, mailoutbox
):
    SignupForm.objects.filter(id=form.id).update(
        enabled=False, redirect_url="https://owner.example/thanks"
    )
    _html, _script, hosted = preview_frames(owner_client, form)
    token = hosted.split("/")[3]

    page = client.post(hosted, {"email": "tried@example.org"})
    answer = client.post(
        reverse("public:preview-submit", args=[token]), {"email": "json@example.org"}
    )

    assert page.status_code == 200
    text = page.content.decode()
    assert form.check_inbox_text in text and "Preview: nothing was saved" in text
    assert "visitors go on to https://owner.example/thanks" in text
    assert answer.json() == {
        "ok": True,
        "message": form.check_inbox_text,
        "redirect": None,
        "preview": "Preview: nothing was saved and no mail was sent.",
    }
    assert answer["Access-Control-Allow-Origin"] == "*"
    assert not Subscriber.objects.exists() and not Subscription.objects.exists()
    assert mailoutbox == []


def test_the_preview_shows_field_errors_like_the_real_form(owner_client, client, form):
    _html, _script, hosted = preview_frames(owner_client, form)
    token = hosted.split("/")[3]
    page = client.post(hosted, {"email": "not an address"})
    assert page.status_code == 400 and "Enter a valid e-mail address" in page.content.decode()
    config = client.get(reverse("public:preview-config", args=[token])).json()
    assert config["submit_url"].endswith(f"/s/p/{token}/submit") and config["preview"]
    answer = client.post(config["submit_url"], {"email": ""})
    assert answer.status_code == 400 and "email" in answer.json()["errors"]


def test_a_tampered_or_foreign_preview_token_is_refused(owner_client, client, form, stranger):
    _html, _script, hosted = preview_frames(owner_client, form)
    token = hosted.split("/")[3]
    for bad in (token[:-2] + "xx", "garbage"):
        assert client.get(reverse("public:preview-page", args=[bad])).status_code == 404
        assert client.post(reverse("public:preview-submit", args=[bad])).status_code == 404
    # A stranger's detail page is a 404, so a stranger never gets a token for the form.
    client.force_login(stranger)
    assert client.get(reverse("lists:form-detail", args=[form.uuid])).status_code == 404


def test_a_preview_token_expires(owner_client, client, form, monkeypatch):
    from lists import previews

    _html, _script, hosted = preview_frames(owner_client, form)
    monkeypatch.setattr(previews, "MAX_AGE_SECONDS", -1)
    assert client.get(hosted).status_code == 404


def test_the_iframe_snippet_escapes_the_title(owner_client, form):
    from lists.views.public import embed_snippets

    SignupForm.objects.filter(id=form.id).update(title='Join" onload="alert(1)')

    request = owner_client.get(reverse("lists:form-detail", args=[form.uuid])).wsgi_request
    form.refresh_from_db()
    iframe = embed_snippets(request, form)["iframe"]
    assert 'title="Join&quot; onload=&quot;alert(1)"' in iframe


# --- The live preview of unsaved builder values ---------------------------------------------


def test_the_live_preview_renders_unsaved_values_and_saves_nothing(owner_client, form):
    path = reverse("lists:form-live-preview", args=[form.uuid])
    values = form_post(form.lists.all(), title="Not saved yet", consent_text="I agree, really")
    response = owner_client.post(path, values)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not saved yet" in page and "I agree, really" in page and "First name" in page
    assert "sandbox" in response["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    form.refresh_from_db()
    assert form.title != "Not saved yet" and form.consent_text == ""
    assert owner_client.get(path).status_code == 405


def test_the_live_preview_of_a_new_form(owner_client, mailing_list):
    path = reverse("lists:form-live-preview-new")
    response = owner_client.post(path, form_post([mailing_list], title="Brand new"))
    assert response.status_code == 200 and "Brand new" in response.content.decode()
    assert not SignupForm.objects.exists()


def test_stranger_gets_404_on_the_live_preview_of_the_owners_form(client, stranger, form):
    client.force_login(stranger)
    path = reverse("lists:form-live-preview", args=[form.uuid])
    response = client.post(path, form_post([], title="Probe"))
    assert response.status_code == 404 and "Probe" not in response.content.decode()


def test_the_edit_page_has_the_preview_frame_and_no_inline_script(owner_client, form):
    page = owner_client.get(reverse("lists:form-edit", args=[form.uuid])).content.decode()
    assert 'name="form-preview"' in page and 'sandbox=""' in page
    assert reverse("lists:form-live-preview", args=[form.uuid]) in page
    assert "js/form_builder.js" in page
    assert "<script>" not in page
