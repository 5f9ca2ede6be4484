"""Confirm, unsubscribe (page and RFC 8058 one-click), preferences, export and erasure."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from lists import preferences, signup, subscriptions
from lists.models import Subscriber, Subscription, SuppressedAddress
from mailpanel.lib import signing
from tests.factories import CustomFieldFactory, MailingListFactory, SubscriberFactory
from tests.lists.test_signup_support import *  # noqa: F403
from tests.lists.test_signup_support import post_signup

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(form, celery_eager, django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """A signup through the form; returns (subscription, confirm path from the mail)."""
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    body = mail.outbox[-1].body
    path = body[body.index("/s/confirm/") :].split()[0]
    return Subscription.objects.get(), path


@pytest.fixture
def confirmed(owner, mailing_list):  # noqa: ANN001, ANN201
    subscriber = SubscriberFactory(account=owner, email="kim@example.org", name="Kim")
    subscription, _ = subscriptions.subscribe(
        mailing_list, subscriber, status="confirmed", source="panel"
    )
    return subscription


def unsubscribe_path(subscription: Subscription, name: str = "public:unsubscribe") -> str:
    token = signing.unsubscribe_token(subscription.subscriber_id, subscription.mailing_list_id, 7)
    return reverse(name, args=[token])


def test_the_confirm_link_shows_a_button_and_only_the_post_confirms(
    client, pending, form, django_capture_on_commit_callbacks
):
    subscription, path = pending
    page = client.get(path)
    assert page.status_code == 200 and "Confirm my subscription" in page.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(path, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Browser/2")
    assert done.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "confirmed"
    consent = subscription.subscriber.consent
    assert consent["ip"] == "198.51.100.7" and consent["user_agent"] == "Browser/2"
    assert consent["form"] == str(form.uuid) and consent["double_opt_in"] is True
    assert "time" in consent and "consent_text" in consent


def test_confirming_sends_the_welcome_mail_when_the_list_wants_one(
    client, pending, mailing_list, django_capture_on_commit_callbacks
):
    type(mailing_list).objects.filter(id=mailing_list.id).update(
        welcome_enabled=True, texts={"welcome_subject": "Hello from {list}"}
    )
    _, path = pending
    with django_capture_on_commit_callbacks(execute=True):
        client.post(path)
    assert mail.outbox[-1].subject == "Hello from Garden News"
    assert "/s/preferences/" in mail.outbox[-1].body


def test_the_confirmation_mail_uses_the_lists_texts(
    owner, mailing_list, form, celery_eager, django_capture_on_commit_callbacks
):
    type(mailing_list).objects.filter(id=mailing_list.id).update(
        texts={"confirm_subject": "Bitte bestätigen: {list}"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    assert mail.outbox[0].subject == "Bitte bestätigen: Garden News"


def test_an_expired_confirm_link_gets_the_friendly_400_page(client, form, monkeypatch, settings):
    subscriber = SubscriberFactory(account=form.account)
    subscription, _ = subscriptions.subscribe(
        form.lists.get(), subscriber, status="pending", source="form"
    )
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 8 * 86400)
    token = signing.confirm_token([subscription.id], form.id)
    monkeypatch.setattr(time, "time", real)
    response = client.post(reverse("public:confirm", args=[token]))
    assert response.status_code == 400 and "link" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == "pending"


def test_pending_signups_expire_and_their_link_dies(client, pending, settings):
    subscription, path = pending
    Subscription.objects.update(status_changed_at=timezone.now() - timedelta(days=8))
    from lists.tasks import expire_pending_subscriptions

    assert expire_pending_subscriptions() == 1
    assert not Subscriber.objects.exists()
    assert client.post(path).status_code == 400
    subscription.mailing_list.refresh_from_db()
    assert subscription.mailing_list.pending_count == 0


def test_recent_pending_signups_do_not_expire(pending):
    assert signup.expire_pending() == 0
    assert Subscription.objects.get().status == "pending"


def test_the_unsubscribe_page_get_changes_nothing_and_the_post_unsubscribes(client, confirmed):
    path = unsubscribe_path(confirmed)
    page = client.get(path)
    assert page.status_code == 200 and "<form" in page.content.decode()
    client.head(path)
    confirmed.refresh_from_db()
    assert confirmed.status == "confirmed"
    response = client.post(path, {"reason": "Too many mails"})
    assert response.status_code == 200
    confirmed.refresh_from_db()
    assert confirmed.status == "unsubscribed" and confirmed.unsubscribe_reason == "Too many mails"
    assert confirmed.changes.last().note.endswith("(campaign 7)")


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribes_at_once_without_cookie_or_redirect(client, confirmed, encoding):
    path = unsubscribe_path(confirmed, "public:one-click")
    if encoding == "urlencoded":
        response = client.post(
            path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.post(path, {"List-Unsubscribe": "One-Click"})  # multipart
    assert response.status_code == 200
    assert not response.cookies and "Set-Cookie" not in response and "Location" not in response
    confirmed.refresh_from_db()
    assert confirmed.status == "unsubscribed"


def test_one_click_needs_its_body_and_a_post(client, confirmed):
    path = unsubscribe_path(confirmed, "public:one-click")
    assert client.get(path).status_code == 405
    assert client.post(path, {"List-Unsubscribe": "Yes"}).status_code == 400
    confirmed.refresh_from_db()
    assert confirmed.status == "confirmed"


def tampered(token: str) -> str:
    return token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")


def test_tampered_and_foreign_tokens_get_a_friendly_400(client, confirmed):
    sub_id, list_id = confirmed.subscriber_id, confirmed.mailing_list_id
    good = {
        "public:unsubscribe": signing.unsubscribe_token(sub_id, list_id),
        "public:preferences": signing.preference_token(sub_id),
        "public:confirm": signing.confirm_token([confirmed.id], None),
    }
    for name, token in good.items():
        for bad in (tampered(token), "garbage", good["public:preferences"] + "x"):
            response = client.post(reverse(name, args=[bad]))
            assert response.status_code == 400, (name, bad)
            assert "This link does not work" in response.content.decode()
    # A token made for one purpose is refused by every other.
    pref = good["public:preferences"]
    assert client.get(reverse("public:unsubscribe", args=[pref])).status_code == 400
    assert (
        client.get(reverse("public:preferences", args=[good["public:unsubscribe"]])).status_code
        == 400
    )
    one_click = reverse("public:one-click", args=[tampered(good["public:unsubscribe"])])
    assert client.post(one_click, {"List-Unsubscribe": "One-Click"}).status_code == 400
    confirmed.refresh_from_db()
    assert confirmed.status == "confirmed"


def test_the_preference_page_toggles_lists_and_saves_fields(client, owner, confirmed):
    CustomFieldFactory(account=owner, key="city", label="City", in_forms=True)
    other = MailingListFactory(owner=owner, name="Other")
    second, _ = subscriptions.subscribe(
        other, confirmed.subscriber, status="confirmed", source="panel"
    )
    path = reverse("public:preferences", args=[signing.preference_token(confirmed.subscriber_id)])
    page = client.get(path)
    assert "Garden News" in page.content.decode() and "Other" in page.content.decode()
    response = client.post(
        path, {"action": "save", "lists": [str(other.id)], "name": "Kim K", "f_city": "Oslo"}
    )
    assert response.status_code == 200
    confirmed.refresh_from_db()
    second.refresh_from_db()
    assert (confirmed.status, second.status) == ("unsubscribed", "confirmed")
    subscriber = Subscriber.objects.get()
    assert subscriber.name == "Kim K" and subscriber.fields == {"city": "Oslo"}
    client.post(path, {"action": "unsubscribe_all"})
    second.refresh_from_db()
    assert second.status == "unsubscribed"


def test_the_data_export_holds_everything_kept(client, confirmed):
    Subscriber.objects.update(fields={"city": "Oslo"}, consent={"ip": "192.0.2.1"})
    subscriptions.unsubscribe(confirmed, source="form", reason="bye")
    token = signing.preference_token(confirmed.subscriber_id)
    response = client.get(reverse("public:preferences-export", args=[token]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["email"] == "kim@example.org" and data["name"] == "Kim"
    assert data["fields"] == {"city": "Oslo"} and data["consent"] == {"ip": "192.0.2.1"}
    (entry,) = data["subscriptions"]
    assert entry["list"] == "Garden News" and entry["status"] == "unsubscribed"
    assert entry["unsubscribe_reason"] == "bye"
    assert entry["history"][-1]["to"] == "unsubscribed"


def test_delete_me_removes_the_subscriber_and_keeps_only_a_hash(client, confirmed, mailing_list):
    token = signing.preference_token(confirmed.subscriber_id)
    path = reverse("public:preferences-delete", args=[token])
    assert client.get(path).status_code == 200
    assert Subscriber.objects.exists()
    assert client.post(path).status_code == 200
    assert not Subscriber.objects.exists() and not Subscription.objects.exists()
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 0
    (record,) = SuppressedAddress.objects.all()
    assert "kim" not in record.address_hash and len(record.address_hash) == 64
    assert preferences.is_suppressed(mailing_list.owner, "KIM@example.org")
    assert client.get(reverse("public:preferences", args=[token])).status_code == 400


def test_opting_in_again_after_deletion_lifts_the_suppression(
    client, confirmed, form, celery_eager, django_capture_on_commit_callbacks
):
    preferences.erase(confirmed.subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form, email="kim@example.org")
    body = mail.outbox[-1].body
    client.post(body[body.index("/s/confirm/") :].split()[0])
    assert Subscription.objects.get().status == "confirmed"
    assert not SuppressedAddress.objects.exists()


def test_unsubscribe_urls_are_absolute_and_work(client, confirmed, settings):
    from lists.views.public import unsubscribe_urls

    urls = unsubscribe_urls(confirmed.subscriber_id, confirmed.mailing_list_id, 3)
    assert urls["one_click"].startswith(settings.SITE_URL)
    path = urls["one_click"][len(settings.SITE_URL) :]
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
