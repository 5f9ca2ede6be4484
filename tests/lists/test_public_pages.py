"""Confirm, unsubscribe (page and RFC 8058 one-click), preferences, export and erasure."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from lists import preferences, subscriptions
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
    eight_days_ago = timezone.now() - timedelta(days=8)
    Subscription.objects.update(
        status_changed_at=eight_days_ago, confirmation_sent_at=eight_days_ago
    )
    from lists.tasks import expire_pending_subscriptions

    assert expire_pending_subscriptions() == 1
    assert not Subscriber.objects.exists()
    assert client.post(path).status_code == 400
    subscription.mailing_list.refresh_from_db()
    assert subscription.mailing_list.pending_count == 0


def test_recent_pending_signups_do_not_expire(pending):
    assert subscriptions.expire_pending() == 0
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
        path, {"action": "save", "lists": [str(other.uuid)], "name": "Kim K", "f_city": "Oslo"}
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


# --- An erased address stays away until the person opts in again -------------------------


def test_a_reimported_file_rejects_the_erased_address(confirmed, mailing_list, settings, tmp_path):
    import io

    from django.core.files import File

    from lists import imports
    from lists.models import ImportReject

    settings.MEDIA_ROOT = tmp_path / "media"
    preferences.erase(confirmed.subscriber)
    content = b"email,name\nKim@Example.org,Kim\nlee@example.org,Lee\n"
    job = imports.create_job(mailing_list, mailing_list.owner, File(io.BytesIO(content), "old.csv"))
    imports.start(job, job.mapping, "confirmed", "update", enqueue=False)
    job = imports.run(job.id)
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["lee@example.org"]
    assert job.imported == 1 and job.rejected == 1
    reject = ImportReject.objects.get(job=job)
    assert (reject.line, reject.reason) == (2, "erased at the subscriber's request")


def test_the_erased_address_cannot_be_added_or_renamed_to_in_the_panel(
    owner_client, confirmed, mailing_list
):
    preferences.erase(confirmed.subscriber)
    add = reverse("lists:subscriber-add", args=[mailing_list.uuid])
    response = owner_client.post(add, {"email": "KIM@example.org", "status": "confirmed"})
    assert response.status_code == 200
    assert "erased at the subscriber" in response.content.decode()
    assert not Subscriber.objects.exists()
    # The same form adds anyone else.
    assert (
        owner_client.post(add, {"email": "lee@example.org", "status": "confirmed"}).status_code
        == 302
    )
    lee = Subscriber.objects.get()
    edit = reverse("lists:subscriber-edit", args=[lee.uuid])
    response = owner_client.post(edit, {"email": "kim@example.org", "name": "Lee"})
    assert response.status_code == 200 and "erased at the subscriber" in response.content.decode()
    lee.refresh_from_db()
    assert lee.email == "lee@example.org"


def test_an_erased_address_signing_up_to_a_single_opt_in_list_must_confirm(
    client, confirmed, mailing_list, form, celery_eager, django_capture_on_commit_callbacks
):
    type(mailing_list).objects.filter(id=mailing_list.id).update(double_opt_in=False)
    preferences.erase(confirmed.subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_signup(form, email="kim@example.org").status_code == 200
    # Someone else is confirmed at once on this list; the erased address only by its link.
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form, email="lee@example.org", ip="192.0.2.2")
    statuses = dict(Subscription.objects.values_list("subscriber__email", "status"))
    assert statuses == {"kim@example.org": "pending", "lee@example.org": "confirmed"}
    (mail_to_kim,) = [m for m in mail.outbox if m.to == ["kim@example.org"]]
    assert SuppressedAddress.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(mail_to_kim.body[mail_to_kim.body.index("/s/confirm/") :].split()[0])
    assert Subscription.objects.get(subscriber__email="kim@example.org").status == "confirmed"
    assert not SuppressedAddress.objects.exists()


# --- Export and erasure reach the mail records ---------------------------------------------


@pytest.fixture
def mail_records(confirmed, owner):  # noqa: ANN001, ANN201
    """A delivery, a bounce (with its returned message) and two log events of Kim's."""
    from bounces.models import BounceEvent, ReturnedMessage
    from sending.models import Delivery
    from stats.models import TrackingEvent
    from tests.factories import CampaignFactory

    now = timezone.now()
    kim = confirmed.subscriber
    campaign = CampaignFactory(account=owner, name="Spring issue")
    Delivery.objects.create(
        campaign=campaign,
        subscriber=kim,
        status="sent",
        sent_at=now,
        smtp_response="250 ok queued for kim@example.org",
    )
    message = ReturnedMessage.objects.create(
        source="imap", received_at=now, raw=b"To: kim@example.org\r\n\r\nKim's out-of-office"
    )
    BounceEvent.objects.create(
        source="imap",
        received_at=now,
        account=owner,
        subscriber=kim,
        recipient="kim@example.org",
        bounce_class="soft",
        diagnostic="452 4.2.2 <kim@example.org>: mailbox full",
        raw="Final-Recipient: rfc822; kim@example.org",
        message=message,
    )
    TrackingEvent.objects.create(
        occurred_at=now, kind="opened", account=owner, subscriber_id=kim.id, details={"ip": "h1"}
    )
    TrackingEvent.objects.create(
        occurred_at=now,
        kind="bounced",
        account=owner,
        subscriber_id=kim.id,
        details={"bounce_class": "soft", "source": "imap"},
    )
    TrackingEvent.objects.create(
        occurred_at=now,
        kind="unsubscribed",
        account=owner,
        subscriber_id=kim.id,
        details={"reason": "I am Kim Example and I moved"},
    )
    return kim


def test_the_data_export_holds_deliveries_bounces_and_events(client, mail_records):
    token = signing.preference_token(mail_records.id)
    data = json.loads(client.get(reverse("public:preferences-export", args=[token])).content)
    (delivery,) = data["deliveries"]
    assert delivery["campaign"] == "Spring issue" and delivery["status"] == "sent"
    assert delivery["sent_at"]
    (bounce,) = data["bounces"]
    assert bounce["class"] == "soft" and "mailbox full" in bounce["diagnostic"] and bounce["at"]
    assert [e["kind"] for e in data["events"]] == ["opened", "bounced", "unsubscribed"]


def test_erasure_leaves_the_address_nowhere_in_the_mail_records(client, mail_records):
    from bounces.models import BounceEvent, ReturnedMessage
    from sending.models import Delivery
    from stats.models import TrackingEvent

    token = signing.preference_token(mail_records.id)
    assert client.post(reverse("public:preferences-delete", args=[token])).status_code == 200
    assert not Delivery.objects.exists()
    (bounce,) = BounceEvent.objects.all()
    assert (bounce.recipient, bounce.raw, bounce.bounce_class) == ("", "", "soft")
    assert "kim@" not in bounce.diagnostic and "mailbox full" in bounce.diagnostic
    assert bytes(ReturnedMessage.objects.get().raw) == b""
    details = sorted(TrackingEvent.objects.values_list("kind", "details"))
    assert details == [("bounced", {"bounce_class": "soft"}), ("opened", {}), ("unsubscribed", {})]


# --- Garbage to every public endpoint: a clear 4xx (or a normal page), never a 5xx -------------


def _garbage_bodies(stamp: str) -> list[tuple[str, bytes]]:
    form = "application/x-www-form-urlencoded"
    ts = f"mp_ts={stamp}".encode()
    big = b"&".join(
        [
            b"email=" + b"a" * 100_000 + b"@example.org",
            b"name=" + b"n" * 100_000,
            b"f_score=" + b"9" * 5000,
            b"f_city=" + b"c" * 100_000,
            b"reason=" + b"r" * 100_000,
        ]
    )
    as_json = json.dumps(
        {"email": "kim@example.org", "name": "\x00", "f_score": "1e100000", "lists": ["²"]}
        | {"consent": True, "mp_ts": stamp, "List-Unsubscribe": "One-Click"}
    ).encode()
    surrogates = b'{"email": "\\ud800@example.org", "name": "\\udfff", "f_city": "\\ud800", '
    return [
        (form, big + b"&" + ts),
        (form, b"email=kim@example.org&f_score=1e100000&action=save&" + ts),
        (form, b"email=kim@example.org&f_score=-1E+99999&f_score=NaN&" + ts),
        (form, b"email=k%00m@example.org&name=%00&f_city=a%00b&reason=%00&lists=%00&" + ts),
        (form, b"email=kim@example.org&name=K%00m&f_city=a%00b&action=save&" + ts),
        (form, b"email=%ff%fe@example.org&name=%ff&f_city=%c3%28&reason=%ff&" + ts),
        (form, b"email=\xff\xfe&name=\x00\x01&reason=\xc3\x28&" + ts),
        (form, b"email=kim@example.org&lists=%C2%B2&lists=%D9%A1&f_score=%C2%B2&action=save&" + ts),
        (form, b"lists=not-a-uuid&lists=" + b"1" * 5000 + b"&action=save&" + ts),
        (form, ts),
        (form, b""),
        ("application/json", as_json),
        ("application/json", surrogates + b'"mp_ts": "' + stamp.encode() + b'"}'),
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b"\xff\xfe\x00"),
        (
            "multipart/form-data; boundary=zz",
            b'--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\n\x00\r\n--zz--',
        ),
        ("text/plain", b"\x00" * 1000),
    ]


def _public_endpoints(form, subscription) -> list[tuple[str, str]]:  # noqa: ANN001
    sub_id, list_id = subscription.subscriber_id, subscription.mailing_list_id
    unsubscribe = signing.unsubscribe_token(sub_id, list_id)
    prefs = signing.preference_token(sub_id)
    return [
        ("POST", reverse("public:form", args=[form.uuid])),
        ("POST", reverse("public:form-submit", args=[form.uuid])),
        ("GET", reverse("public:form-config", args=[form.uuid])),
        ("POST", reverse("public:form-config", args=[form.uuid])),
        (
            "POST",
            reverse("public:confirm", args=[signing.confirm_token([subscription.id], form.id)]),
        ),
        ("POST", reverse("public:unsubscribe", args=[unsubscribe])),
        ("POST", reverse("public:one-click", args=[unsubscribe])),
        ("POST", reverse("public:preferences", args=[prefs])),
        ("GET", reverse("public:preferences-export", args=[prefs])),
        ("POST", reverse("public:preferences-export", args=[prefs])),
        # Last: it erases the subscriber the other links name.
        ("POST", reverse("public:preferences-delete", args=[prefs])),
    ]


@pytest.fixture
def garbage_targets(owner, mailing_list, confirmed, settings):  # noqa: ANN001, ANN201
    from tests.factories import SignupFormFactory

    # Every post must reach validation, not stop at a rate limit.
    for name in ("SIGNUP_RATE_PER_IP", "SIGNUP_RATE_PER_FORM", "SIGNUP_RATE_PER_ADDRESS"):
        setattr(settings, name, "100000/60")

    CustomFieldFactory(account=owner, key="score", label="Score", type="number", in_forms=True)
    CustomFieldFactory(account=owner, key="city", label="City", in_forms=True)
    other = MailingListFactory(owner=owner, name="Other")
    subscriptions.subscribe(other, confirmed.subscriber, status="pending", source="form")
    form = SignupFormFactory(
        account=owner,
        lists=[mailing_list, other],
        allow_list_choice=True,
        consent_text="I agree.",
        field_config=[
            {"key": "name", "label": "Name", "required": True},
            {"key": "field:score", "label": "Score", "required": False},
            {"key": "field:city", "label": "City", "required": False},
        ],
    )
    return form, confirmed


def _post_garbage_everywhere(client, form, subscription) -> None:  # noqa: ANN001
    bodies = _garbage_bodies(signing.form_timestamp(str(form.uuid)))
    for method, path in _public_endpoints(form, subscription):
        for content_type, body in bodies:
            response = client.generic(method, path, body, content_type)
            assert response.status_code < 500, (
                path,
                content_type,
                body[:80],
                response.content[:300],
            )


@pytest.mark.postgres
def test_garbage_to_every_public_endpoint_never_gets_a_server_error_on_postgres(
    client, garbage_targets
):
    _post_garbage_everywhere(client, *garbage_targets)


def test_garbage_to_every_public_endpoint_never_gets_a_server_error_on_sqlite(
    client, garbage_targets
):
    from tests.conftest import has_postgres

    if has_postgres():
        pytest.skip("the PostgreSQL variant above runs instead")
    _post_garbage_everywhere(client, *garbage_targets)


def test_a_huge_or_far_out_number_is_a_field_error(garbage_targets):
    form, _ = garbage_targets
    for value in ("9" * 5000, "1e100000", "-1E+99999", "1e15"):
        response = post_signup(form, json_api=True, name="Ann", consent="on", f_score=value)
        assert response.status_code == 400 and "f_score" in response.json()["errors"], value
    chosen = str(form.lists.first().uuid)
    response = post_signup(
        form, json_api=True, name="Ann", consent="on", f_score="12.5", lists=chosen
    )
    assert response.status_code == 200, response.json()


def test_a_nul_character_is_a_field_error_in_signup_and_preferences(client, garbage_targets):
    form, subscription = garbage_targets
    response = post_signup(form, json_api=True, name="A\x00nn", consent="on", f_city="a\x00")
    assert response.status_code == 400
    assert {"name", "f_city"} <= set(response.json()["errors"])
    path = reverse(
        "public:preferences", args=[signing.preference_token(subscription.subscriber_id)]
    )
    response = client.post(path, {"action": "save", "name": "K\x00m", "f_city": "x\x00"})
    assert response.status_code == 400 and "NUL" in response.content.decode()
    assert Subscriber.objects.get(id=subscription.subscriber_id).name == "Kim"


def test_odd_unicode_digits_in_the_list_toggles_are_ignored(client, garbage_targets):
    _, subscription = garbage_targets
    path = reverse(
        "public:preferences", args=[signing.preference_token(subscription.subscriber_id)]
    )
    response = client.post(
        path, {"action": "save", "lists": ["²", "١", str(subscription.mailing_list.uuid)]}
    )
    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "confirmed"


# --- Every public wording follows the list's texts -------------------------------------------


def test_the_lists_texts_reach_every_self_service_page(client, confirmed, mailing_list):
    from lists.confirmation import DEFAULT_TEXTS

    custom = {key: f"[{key} of {{list}}]" for key in DEFAULT_TEXTS}
    type(mailing_list).objects.filter(id=mailing_list.id).update(texts=custom)
    token = signing.preference_token(confirmed.subscriber_id)

    def shown(response, *keys: str) -> None:  # noqa: ANN001
        page = response.content.decode()
        for key in keys:
            assert f"[{key} of Garden News]" in page, key

    prefs = reverse("public:preferences", args=[token])
    shown(
        client.get(prefs),
        "preferences_lists",
        "preferences_save",
        "preferences_unsubscribe_all",
        "preferences_download",
        "preferences_delete_link",
        "preferences_name_label",
        "preferences_data_title",
    )
    Subscription.objects.filter(id=confirmed.id).update(status="pending")
    shown(client.get(prefs), "preferences_pending")
    Subscription.objects.filter(id=confirmed.id).update(status="bounced")
    shown(client.get(prefs), "preferences_bounced")
    Subscription.objects.filter(id=confirmed.id).update(status="confirmed")
    shown(
        client.post(prefs, {"action": "save", "lists": [str(mailing_list.uuid)]}),
        "preferences_saved",
    )
    shown(client.get(unsubscribe_path(confirmed)), "unsubscribe_reason_label", "manage_link")
    shown(client.post(prefs, {"action": "unsubscribe_all"}), "preferences_unsubscribed_all")
    delete = reverse("public:preferences-delete", args=[token])
    shown(client.get(delete), "delete_title", "delete_text", "delete_button")
    shown(client.post(delete), "deleted_title", "deleted_text")


def test_the_welcome_mail_link_follows_the_lists_text(
    client, pending, mailing_list, django_capture_on_commit_callbacks
):
    type(mailing_list).objects.filter(id=mailing_list.id).update(
        welcome_enabled=True, texts={"welcome_manage_link": "Einstellungen ändern"}
    )
    _, path = pending
    with django_capture_on_commit_callbacks(execute=True):
        client.post(path)
    html = mail.outbox[-1].alternatives[0][0]
    assert "Einstellungen ändern" in html and "Manage your subscription" not in html


def test_a_pending_address_mailed_again_gets_the_full_expiry_from_the_new_mail(
    pending, form, celery_eager, django_capture_on_commit_callbacks, settings
):
    # Signed up 8 days ago; signed up again (a fresh link) yesterday: the new link lives on.
    Subscription.objects.update(
        status_changed_at=timezone.now() - timedelta(days=8),
        confirmation_sent_at=timezone.now() - timedelta(days=1),
    )
    assert subscriptions.expire_pending() == 0
    assert Subscription.objects.get().status == "pending"
    Subscription.objects.update(confirmation_sent_at=timezone.now() - timedelta(days=8))
    assert subscriptions.expire_pending() == 1
    assert not Subscription.objects.exists()


def test_the_preference_page_without_lists_uses_the_default_wording(client, owner):
    subscriber = SubscriberFactory(account=owner, email="solo@example.org")
    page = client.get(
        reverse("public:preferences", args=[signing.preference_token(subscriber.id)])
    ).content.decode()
    assert "You are on no lists." in page and "Your data" in page


def test_signup_errors_follow_the_texts_of_the_forms_first_list(form, mailing_list, fake_dns):
    texts = {
        "signup_error_email": "Keine gültige Adresse ({reason})",
        "signup_error_domain": "Diese Domain empfängt keine Mails",
        "signup_error_required": "Pflichtfeld",
        "signup_error_consent": "Bitte zustimmen",
        "signup_error_no_stamp": "Bitte das Formular benutzen",
    }
    type(mailing_list).objects.filter(id=mailing_list.id).update(texts=texts)
    type(form).objects.filter(id=form.id).update(
        consent_text="I agree",
        field_config=[{"key": "name", "label": "Your name", "required": True}],
    )
    form.refresh_from_db()

    errors = post_signup(form, json_api=True, email="not an address").json()["errors"]
    assert errors["email"] == [
        "Keine gültige Adresse (the address contains spaces or control characters)"
    ]
    assert errors["name"] == ["Pflichtfeld"] and errors["consent"] == ["Bitte zustimmen"]
    errors = post_signup(
        form, json_api=True, email="x@no-such-domain.example", name="X", consent="yes"
    ).json()["errors"]
    assert errors == {"email": ["Diese Domain empfängt keine Mails"]}
    page = post_signup(form, mp_ts="").content.decode()
    assert "Pflichtfeld" in page
    assert post_signup(form, json_api=True, mp_ts="").json()["errors"] == {
        "__all__": ["Bitte das Formular benutzen"]
    }


def test_the_list_texts_page_offers_the_new_texts_with_their_placeholders(
    owner_client, mailing_list
):
    page = owner_client.get(reverse("lists:list-public", args=[mailing_list.uuid]))
    html = page.content.decode()
    for key in ("text_preferences_no_lists", "text_signup_error_email", "text_preferences_blocked"):
        assert f'name="{key}"' in html
    assert "{reason} is replaced by what is wrong with the address." in html


# --- Preferences: the blocklist, and fields by type -------------------------------------------


def test_the_preference_page_does_not_resubscribe_a_blocked_address(
    client, owner, confirmed, mailing_list
):
    from tests.factories import BlocklistEntryFactory

    path = reverse("public:preferences", args=[signing.preference_token(confirmed.subscriber_id)])
    client.post(path, {"action": "save"})  # every list off
    confirmed.refresh_from_db()
    assert confirmed.status == "unsubscribed"
    BlocklistEntryFactory(account=owner, kind="domain", value="example.org")

    response = client.post(path, {"action": "save", "lists": [str(mailing_list.uuid)]})

    page = response.content.decode()
    assert "This address is blocked, so it cannot be subscribed to Garden News again" in page
    assert "Your preferences are saved." in page
    confirmed.refresh_from_db()
    assert confirmed.status == "unsubscribed"
    mailing_list.refresh_from_db()
    assert mailing_list.confirmed_count == 0


def test_a_blocked_address_may_still_leave_its_other_lists(client, owner, confirmed, mailing_list):
    from tests.factories import BlocklistEntryFactory

    other = MailingListFactory(owner=owner, name="Other")
    second, _ = subscriptions.subscribe(
        other, confirmed.subscriber, status="unsubscribed", source="panel"
    )
    BlocklistEntryFactory(account=None, value="kim@example.org")
    path = reverse("public:preferences", args=[signing.preference_token(confirmed.subscriber_id)])

    result = preferences.set_lists(confirmed.subscriber, {other.uuid})

    assert result.changed == 1 and result.refused == [other]
    confirmed.refresh_from_db()
    second.refresh_from_db()
    assert (confirmed.status, second.status) == ("unsubscribed", "unsubscribed")
    assert client.get(path).status_code == 200


def test_an_address_that_is_not_blocked_turns_a_list_back_on(client, confirmed, mailing_list):
    path = reverse("public:preferences", args=[signing.preference_token(confirmed.subscriber_id)])
    client.post(path, {"action": "save"})
    response = client.post(path, {"action": "save", "lists": [str(mailing_list.uuid)]})
    assert "blocked" not in response.content.decode()
    confirmed.refresh_from_db()
    assert confirmed.status == "confirmed"


def test_the_preference_page_renders_typed_fields_with_their_inputs(client, owner, confirmed):
    for key, kind in (("age", "number"), ("born", "date"), ("vip", "boolean"), ("city", "text")):
        CustomFieldFactory(account=owner, key=key, label=key.title(), type=kind, in_forms=True)
    subscriber = confirmed.subscriber
    Subscriber.objects.filter(id=subscriber.id).update(
        fields={"age": 2.5, "born": "1990-04-01", "vip": True}
    )
    path = reverse("public:preferences", args=[signing.preference_token(subscriber.id)])

    page = client.get(path).content.decode()

    assert 'type="number" id="f_age" name="f_age" value="2.5" step="any"' in page
    assert 'type="date" id="f_born" name="f_born" value="1990-04-01"' in page
    assert 'type="checkbox" id="f_vip" name="f_vip" value="yes" checked' in page
    assert 'type="text" id="f_city" name="f_city" value=""' in page


def test_unticking_a_yes_no_field_stores_no(client, owner, confirmed):
    CustomFieldFactory(account=owner, key="vip", label="VIP", type="boolean", in_forms=True)
    subscriber = confirmed.subscriber
    Subscriber.objects.filter(id=subscriber.id).update(fields={"vip": True})
    path = reverse("public:preferences", args=[signing.preference_token(subscriber.id)])

    # What the browser sends for an unticked box: only the hidden "no" before it.
    client.post(path, {"action": "save", "name": "Kim", "f_vip": "no"})
    subscriber.refresh_from_db()
    assert subscriber.fields == {"vip": False}
    client.post(path, {"action": "save", "name": "Kim", "f_vip": ["no", "yes"]})
    subscriber.refresh_from_db()
    assert subscriber.fields == {"vip": True}


# --- The welcome mail can be left with one click ----------------------------------------------


def test_the_welcome_mail_has_a_signed_unsubscribe_link_and_headers(
    client, pending, mailing_list, django_capture_on_commit_callbacks
):
    type(mailing_list).objects.filter(id=mailing_list.id).update(
        welcome_enabled=True, texts={"welcome_unsubscribe_link": "Abmelden"}
    )
    subscription, path = pending
    with django_capture_on_commit_callbacks(execute=True):
        client.post(path)
    welcome = mail.outbox[-1]
    assert welcome.subject == "Welcome to Garden News"
    page = welcome.body[welcome.body.index("/s/unsubscribe/") :].split()[0]
    assert "Abmelden" in welcome.body and "Abmelden" in welcome.alternatives[0][0]
    one_click = urlsplit(welcome.extra_headers["List-Unsubscribe"].strip("<>")).path
    assert welcome.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert one_click.endswith("/one-click")
    assert client.get(page).status_code == 200
    response = client.post(one_click, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == "unsubscribed"


def test_the_confirmation_mail_has_no_unsubscribe_link(
    form, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    (message,) = mail.outbox
    assert "/s/unsubscribe/" not in message.body and "List-Unsubscribe" not in message.extra_headers
