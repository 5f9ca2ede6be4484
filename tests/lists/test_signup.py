"""The public signup endpoint: processing, abuse controls and what it answers."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from lists import subscriptions
from lists.models import Subscriber, Subscription
from mailpanel.lib import signing
from tests.factories import (
    BlocklistEntryFactory,
    MailingListFactory,
    SignupFormFactory,
    SubscriberFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.lists.test_signup_support import *  # noqa: F403
from tests.lists.test_signup_support import post_signup

pytestmark = pytest.mark.django_db


def subscribed(address: str = "new.reader@example.org") -> list[Subscription]:
    return list(Subscription.objects.filter(subscriber__email=address))


def test_new_address_is_pending_and_gets_one_confirmation_mail(
    form, mailing_list, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(form, name="<b>Buy pills at spam.example</b>")
    assert response.status_code == 200
    assert form.check_inbox_text in response.content.decode()
    (subscription,) = subscribed()
    assert subscription.status == "pending" and subscription.source == "form"
    mailing_list.refresh_from_db()
    assert mailing_list.pending_count == 1
    (message,) = mail.outbox
    assert message.to == ["new.reader@example.org"]
    body = message.body + message.alternatives[0][0]
    assert "/s/confirm/" in body
    # Nothing the poster typed is echoed: the name field is a spam vector.
    assert "pills" not in body and "spam.example" not in body


def test_the_answer_is_the_same_for_new_pending_and_subscribed_addresses(form, mailing_list):
    SubscriptionFactory(
        mailing_list=mailing_list,
        subscriber__email="old@example.org",
        subscriber__account=form.account,
        status="confirmed",
    )
    answers = {}
    for label, address in [
        ("new", "a@example.org"),
        ("pending", "a@example.org"),
        ("confirmed", "old@example.org"),
    ]:
        html = post_signup(form, email=address, ip=f"192.0.2.{len(answers) + 10}")
        api = post_signup(form, email=address, json_api=True, ip=f"198.51.100.{len(answers)}")
        answers[label] = (html.status_code, html.content, api.status_code, api.content)
    assert answers["new"] == answers["pending"] == answers["confirmed"]


def test_a_pending_address_is_not_mailed_again_within_the_cool_down(
    form, celery_eager, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
        post_signup(form)
    assert len(mail.outbox) == 1
    Subscription.objects.update(confirmation_sent_at="2020-01-01T00:00:00Z")
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    assert len(mail.outbox) == 2


def test_the_honeypot_gets_the_success_answer_and_nothing_happens(
    form, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(form, website="http://spam.example")
    assert response.status_code == 200
    assert form.check_inbox_text in response.content.decode()
    assert not Subscriber.objects.exists() and not mail.outbox


@pytest.mark.parametrize("timestamp", ["fresh", "missing", "garbage", "other form"])
def test_a_form_sent_too_fast_or_without_its_stamp_is_refused(form, settings, timestamp):
    settings.SIGNUP_MIN_FILL_SECONDS = 5
    stamps = {
        "fresh": signing.form_timestamp(str(form.uuid)),
        "missing": "",
        "garbage": "x" * 5000,
        "other form": signing.form_timestamp("00000000-0000-0000-0000-000000000000"),
    }
    response = post_signup(form, json_api=True, mp_ts=stamps[timestamp])
    assert response.status_code == 400
    assert "__all__" in response.json()["errors"]
    assert not Subscriber.objects.exists()


def test_a_form_filled_slowly_enough_is_accepted(form, settings, monkeypatch):
    settings.SIGNUP_MIN_FILL_SECONDS = 5
    import time

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 6)
    stamp = signing.form_timestamp(str(form.uuid))
    monkeypatch.setattr(time, "time", real)
    assert post_signup(form, mp_ts=stamp).status_code == 200
    assert subscribed()


def test_the_rate_limit_per_ip_refuses_the_third_signup(form, settings):
    settings.SIGNUP_RATE_PER_IP = "2/600"
    for n in range(2):
        assert post_signup(form, email=f"r{n}@example.org", ip="203.0.113.5").status_code == 200
    refused = post_signup(form, email="r3@example.org", ip="203.0.113.5", json_api=True)
    assert refused.status_code == 429
    assert post_signup(form, email="r4@example.org", ip="203.0.113.6").status_code == 200
    assert not subscribed("r3@example.org") and subscribed("r4@example.org")


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(form, settings):
    settings.SIGNUP_RATE_PER_IP = "1/600"
    client_kwargs = {"ip": "10.0.0.2"}
    # Untrusted: a client cannot dodge the limit by inventing a forwarded address.
    from django.test import Client

    spoofing = Client(HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert post_signup(form, spoofing, email="a1@example.org", **client_kwargs).status_code == 200
    spoofing = Client(HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert post_signup(form, spoofing, email="a2@example.org", **client_kwargs).status_code == 429
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n, forwarded in enumerate(["198.51.100.3", "1.2.3.4, 198.51.100.4"]):
        client = Client(HTTP_X_FORWARDED_FOR=forwarded)
        response = post_signup(form, client, email=f"b{n}@example.org", **client_kwargs)
        assert response.status_code == 200
    again = Client(HTTP_X_FORWARDED_FOR="9.9.9.9, 198.51.100.4")
    assert post_signup(form, again, email="b9@example.org", **client_kwargs).status_code == 429


def test_the_rate_limit_per_form_refuses_when_many_ips_post(form, settings):
    settings.SIGNUP_RATE_PER_FORM = "2/60"
    codes = [
        post_signup(form, email=f"f{n}@example.org", ip=f"192.0.2.{n + 1}").status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
    other = SignupFormFactory(account=form.account, lists=list(form.lists.all()))
    assert post_signup(other, email="g@example.org", ip="192.0.2.99").status_code == 200


def test_the_rate_limit_per_address_holds_across_accounts_and_answers_the_same(
    form, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.SIGNUP_RATE_PER_ADDRESS = "2/3600"
    forms = [form]
    for username in ("acc1", "acc2"):
        user = UserFactory(username=username)
        forms.append(SignupFormFactory(account=user, lists=[MailingListFactory(owner=user)]))
    answers = []
    with django_capture_on_commit_callbacks(execute=True):
        for n, each in enumerate(forms):
            answers.append(post_signup(each, email="Target@Example.org", ip=f"192.0.2.{n + 1}"))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(subscribed("Target@example.org")) == 2
    assert len(mail.outbox) == 2


def test_a_blocklisted_address_gets_the_success_answer_and_nothing_happens(
    form, celery_eager, django_capture_on_commit_callbacks
):
    BlocklistEntryFactory(account=form.account, value="new.reader@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(form)
    assert response.status_code == 200 and form.check_inbox_text in response.content.decode()
    assert not Subscriber.objects.exists() and not mail.outbox


def test_a_domain_without_mail_records_is_refused_with_a_field_error(form, fake_dns):
    response = post_signup(form, json_api=True, email="x@no-such-domain.example")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert fake_dns.calls >= 1 and not Subscriber.objects.exists()


def test_when_dns_is_down_the_address_is_accepted(form, fake_dns):
    fake_dns.down = True
    assert post_signup(form, json_api=True).json()["ok"] is True
    assert subscribed()


@pytest.mark.parametrize("configuration", ["", "# no nameserver here\n", None])
def test_without_a_resolver_configuration_the_address_is_accepted(
    form, fake_dns, resolv_conf, configuration
):
    # An empty resolv.conf, one without nameservers, or none at all: DNS is down, not the
    # domain, so the signup goes through instead of answering 503.
    if configuration is None:
        resolv_conf.unlink()
    else:
        resolv_conf.write_text(configuration)
    response = post_signup(form, json_api=True, email="x@no-such-domain.example")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert subscribed("x@no-such-domain.example") and fake_dns.calls == 0


def test_the_resolver_configuration_is_read_once_per_process(form, fake_dns, resolv_conf):
    from lists import mxcheck

    assert not mxcheck.domain_accepts_mail("no-such-domain.example")
    # Gone after the first check: a resolver built per check would now fail and accept.
    resolv_conf.unlink()
    assert not mxcheck.domain_accepts_mail("no-such-domain.example")
    assert mxcheck.resolver() is mxcheck.resolver()


def test_a_resolver_configuration_that_appears_later_is_used(form, fake_dns, resolv_conf):
    from lists import mxcheck

    content = resolv_conf.read_text()
    resolv_conf.unlink()
    assert mxcheck.domain_accepts_mail("no-such-domain.example")
    resolv_conf.write_text(content)
    assert not mxcheck.domain_accepts_mail("no-such-domain.example")


def test_an_invalid_address_is_shown_again_with_its_error(form):
    response = post_signup(form, email="not an address", name="Ann")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid e-mail address" in page and 'value="Ann"' in page
    api = post_signup(form, email="not an address", json_api=True)
    assert api.status_code == 400 and list(api.json()["errors"]) == ["email"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b"{not json"),
        ("application/json", b'{"email": {"a": 1}, "name": [1, 2], "mp_ts": 5}'),
        ("application/json", b"\xff\xfe\x00garbage"),
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: garbage\r\n\r\n"),
        ("multipart/form-data", b"no boundary at all"),
        ("application/x-www-form-urlencoded", b"email=%ff%fe&name=\x00\x01&mp_ts=%00"),
        ("text/plain", b"\x00" * 1000),
    ],
)
def test_garbage_never_gets_a_server_error(client, form, content_type, body):
    for name in ("public:form-submit", "public:form"):
        response = client.generic("POST", reverse(name, args=[form.uuid]), body, content_type)
        assert 400 <= response.status_code < 500, (name, response.status_code)


def test_a_huge_field_is_an_error_not_a_crash(form):
    response = post_signup(
        form, json_api=True, email="a" * 100000 + "@example.org", name="n" * 10**5
    )
    assert response.status_code == 400


def test_the_script_endpoint_allows_any_origin_with_a_preflight(client, form):
    url = reverse("public:form-submit", args=[form.uuid])
    preflight = client.options(
        url, HTTP_ORIGIN="https://site.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    answer = post_signup(form, json_api=True)
    assert answer["Access-Control-Allow-Origin"] == "*"
    config = client.get(reverse("public:form-config", args=[form.uuid]))
    assert config["Access-Control-Allow-Origin"] == "*"
    assert [f["name"] for f in config.json()["fields"]] == ["email", "name"]
    # Only that endpoint: the hosted page and the panel send no CORS header.
    hosted = client.get(reverse("public:form", args=[form.uuid]))
    assert "Access-Control-Allow-Origin" not in hosted


def test_the_hosted_page_may_be_framed_by_any_site(client, form):
    response = client.get(reverse("public:form", args=[form.uuid]))
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    assert "frame-ancestors *" in response["Content-Security-Policy"]
    assert "<script>" not in response.content.decode()


def test_an_unsubscribed_address_signing_up_again_goes_through_double_opt_in(
    form, mailing_list, celery_eager, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(account=form.account, email="new.reader@example.org")
    subscription, _ = subscriptions.subscribe(
        mailing_list, subscriber, status="confirmed", source="panel"
    )
    subscriptions.unsubscribe(subscription, source="form")
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert len(mail.outbox) == 1


def test_a_signup_does_not_change_an_existing_subscribers_data(form, mailing_list):
    SubscriberFactory(account=form.account, email="new.reader@example.org", name="Real Name")
    post_signup(form, name="Someone Else")
    assert Subscriber.objects.get().name == "Real Name"


def test_a_list_without_double_opt_in_confirms_at_once_and_records_consent(
    owner, celery_eager, django_capture_on_commit_callbacks
):
    direct = MailingListFactory(owner=owner, double_opt_in=False)
    form = SignupFormFactory(account=owner, lists=[direct], consent_text="I agree to news.")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(form, consent="yes", HTTP_USER_AGENT="TestAgent/1")
    assert form.success_text in response.content.decode()
    (subscription,) = subscribed()
    assert subscription.status == "confirmed"
    consent = subscription.subscriber.consent
    assert consent["ip"] == "192.0.2.1" and consent["consent_text"] == "I agree to news."
    assert consent["form"] == str(form.uuid)
    assert not mail.outbox


def test_the_consent_box_must_be_ticked(owner, mailing_list):
    form = SignupFormFactory(account=owner, lists=[mailing_list], consent_text="I agree.")
    response = post_signup(form, json_api=True)
    assert response.status_code == 400 and "consent" in response.json()["errors"]


def test_subscribers_choose_among_the_forms_lists_only(owner, mailing_list):
    second = MailingListFactory(owner=owner)
    foreign = MailingListFactory()
    form = SignupFormFactory(account=owner, lists=[mailing_list, second], allow_list_choice=True)
    from django.test import Client

    response = Client().post(
        reverse("public:form-submit", args=[form.uuid]),
        {**signup_data_for(form), "lists": [str(second.uuid), str(foreign.uuid)]},
    )
    assert response.status_code == 200
    assert [s.mailing_list for s in subscribed()] == [second]
    none_chosen = post_signup(form, json_api=True, email="z@example.org")
    assert none_chosen.status_code == 400 and "lists" in none_chosen.json()["errors"]


def signup_data_for(form) -> dict:  # noqa: ANN001
    from tests.lists.test_signup_support import signup_data

    return signup_data(form)


def test_only_the_stored_redirect_url_is_used(owner, mailing_list, client):
    form = SignupFormFactory(
        account=owner, lists=[mailing_list], redirect_url="https://owner.example/thanks"
    )
    response = post_signup(
        form, client, next="https://evil.example/", redirect="https://evil.example"
    )
    assert response.status_code == 302
    assert response["Location"] == "https://owner.example/thanks"
    api = post_signup(form, json_api=True, email="b@example.org", next="https://evil.example/")
    assert api.json()["redirect"] == "https://owner.example/thanks"


def test_a_disabled_or_unknown_form_is_not_found(form):
    form.enabled = False
    form.save()
    assert post_signup(form).status_code == 404
    assert post_signup(form, json_api=True).status_code == 404
    assert json.loads(post_signup(form, json_api=True).content)["ok"] is False
    assert not Subscriber.objects.exists()


def test_a_new_signup_takes_five_statements(
    form, mailing_list, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # The endpoint's cost under load: the form with its lists, the blocklist, the
    # subscriber, the subscription (with its confirmation time) and the list's count.
    # The test's own transaction turns BEGIN/COMMIT into a savepoint pair: two more.
    post_signup(form, email="warm@example.org")
    with django_assert_num_queries(7):
        assert post_signup(form, email="second@example.org").status_code == 200
    (subscription,) = subscribed("second@example.org")
    assert subscription.confirmation_sent_at is not None
    mailing_list.refresh_from_db()
    assert mailing_list.pending_count == 2


def test_a_known_pending_address_takes_few_statements_and_no_second_mail(
    form, mailing_list, django_assert_num_queries, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(form)
    # The insert skips; then the subscriber, and its subscriptions read under lock.
    # Nothing is written: the mail went out within the cool-down.
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(7):
        assert post_signup(form).status_code == 200
    assert len(mail.outbox) == 1
    mailing_list.refresh_from_db()
    assert mailing_list.pending_count == 1


def test_signups_refused_per_ip_do_not_use_up_the_forms_limit(form, settings):
    # One noisy address must not lock everybody else out of the form.
    settings.SIGNUP_RATE_PER_IP = "1/600"
    settings.SIGNUP_RATE_PER_FORM = "3/600"
    codes = [
        post_signup(form, email=f"n{n}@example.org", ip="203.0.113.9").status_code for n in range(5)
    ]
    assert codes == [200, 429, 429, 429, 429]
    others = [
        post_signup(form, email=f"o{n}@example.org", ip=f"198.51.100.{n + 1}").status_code
        for n in range(3)
    ]
    assert others == [200, 200, 429]


def test_a_domain_with_a_null_mx_is_refused(form, fake_dns, monkeypatch):
    import dns.resolver

    null_mx = [type("MX", (), {"exchange": "."})()]
    monkeypatch.setattr(
        dns.resolver.Resolver, "resolve", lambda self, name, rdtype="A", **kw: null_mx
    )
    response = post_signup(form, json_api=True, email="x@null-mx.example")
    assert response.status_code == 400 and "email" in response.json()["errors"]


def test_the_expiry_task_is_scheduled(settings):
    from mailpanel.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["expire-pending-signups"]
    assert entry["task"] in app.tasks and settings.PENDING_EXPIRY_DAYS == 7


# --- The fill-time stamp: fresh for the hosted page and the script, none in the plain embed --


def _stamp_from(seconds_ago: float, form, monkeypatch) -> str:  # noqa: ANN001
    import time

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - seconds_ago)
    stamp = signing.form_timestamp(str(form.uuid))
    monkeypatch.setattr(time, "time", real)
    return stamp


@pytest.mark.parametrize("json_api", [True, False], ids=["script", "hosted"])
def test_a_stamp_older_than_its_max_age_is_refused(form, settings, monkeypatch, json_api):
    settings.SIGNUP_MIN_FILL_SECONDS = 5
    settings.SIGNUP_STAMP_MAX_AGE_HOURS = 24
    old = _stamp_from(25 * 3600, form, monkeypatch)
    response = post_signup(form, json_api=json_api, mp_ts=old)
    assert response.status_code == 400 and "long time" in response.content.decode()
    assert not Subscriber.objects.exists()
    day_old = _stamp_from(23 * 3600, form, monkeypatch)
    assert post_signup(form, json_api=json_api, mp_ts=day_old).status_code == 200


def test_the_hosted_page_renders_a_fresh_stamp_and_refuses_a_fast_post(client, form, settings):
    settings.SIGNUP_MIN_FILL_SECONDS = 5
    page = client.get(reverse("public:form", args=[form.uuid])).content.decode()
    assert 'name="mp_ts" value="' in page
    stamp = page.split('name="mp_ts" value="')[1].split('"')[0]
    assert post_signup(form, mp_ts=stamp).status_code == 400
    assert post_signup(form, mp_ts="x" * 50).status_code == 400
    assert not Subscriber.objects.exists()


def test_the_script_endpoint_needs_its_stamp(form, settings):
    settings.SIGNUP_MIN_FILL_SECONDS = 0
    assert post_signup(form, json_api=True, mp_ts="").status_code == 400
    assert not Subscriber.objects.exists()


def _plain_embed(client, owner, form):  # noqa: ANN001, ANN202
    from lists.views.public import embed_snippets

    client.force_login(owner)
    request = client.get(reverse("lists:form-detail", args=[form.uuid])).wsgi_request
    return embed_snippets(request, form)["html"]


def test_the_plain_embed_carries_no_stamp_and_works_without_one(
    client, owner, form, settings, monkeypatch
):
    settings.SIGNUP_MIN_FILL_SECONDS = 5
    settings.SIGNUP_RATE_PER_IP_UNSTAMPED = "2/3600"
    html = _plain_embed(client, owner, form)
    assert "mp_ts" not in html and 'name="website"' in html
    path = reverse("public:form", args=[form.uuid])
    plain = Client()
    for n in range(2):
        response = plain.post(path, {"email": f"p{n}@example.org", "website": ""})
        assert response.status_code == 200, response.content
    assert {s.subscriber.email for s in Subscription.objects.all()} == {
        "p0@example.org",
        "p1@example.org",
    }
    # The stricter limit for stamp-less posts; a stamped post from there still goes.
    assert plain.post(path, {"email": "p2@example.org"}).status_code == 429
    assert (
        post_signup(
            form, email="p3@example.org", ip="127.0.0.1", mp_ts=_stamp_from(60, form, monkeypatch)
        ).status_code
        == 200
    )
    # The honeypot still holds for stamp-less posts.
    Client().post(path, {"email": "bot@example.org", "website": "x"}, REMOTE_ADDR="192.0.2.50")
    assert not subscribed("bot@example.org")


def test_a_json_post_with_consent_true_is_accepted(owner, mailing_list, client):
    form = SignupFormFactory(account=owner, lists=[mailing_list], consent_text="I agree.")
    body = {
        "email": "json@example.org",
        "consent": True,
        "mp_ts": signing.form_timestamp(str(form.uuid)),
    }
    path = reverse("public:form-submit", args=[form.uuid])
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.json()
    body["consent"] = False
    body["email"] = "no@example.org"
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and "consent" in response.json()["errors"]
