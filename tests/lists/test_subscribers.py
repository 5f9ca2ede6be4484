"""The subscriber pages of the panel: detail, add to a list, edit, delete, (un)subscribe, block."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists import blocklist, subscriptions
from lists.models import BlocklistEntry, MailingList, Subscriber, Subscription, SubscriptionChange
from tests.factories import CustomFieldFactory, MailingListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="News")


@pytest.fixture
def offers(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="Offers")


def put_on(mailing_list: MailingList, email: str, status: str = "confirmed") -> Subscriber:
    subscriber, _ = subscriptions.find_or_create_subscriber(mailing_list.owner, email, name="Ann")
    subscriptions.subscribe(mailing_list, subscriber, status=status, source="panel")
    return subscriber


def counts(mailing_list: MailingList) -> dict[str, int]:
    mailing_list.refresh_from_db()
    return {
        "pending": mailing_list.pending_count,
        "confirmed": mailing_list.confirmed_count,
        "unsubscribed": mailing_list.unsubscribed_count,
    }


def url(name: str, *args: object) -> str:
    return reverse(f"lists:{name}", args=args)


# --- Detail ---------------------------------------------------------------------------------


def test_detail_shows_fields_subscriptions_and_history(owner_client, owner, news) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="city", label="Home town")
    subscriber = put_on(news, "ann@example.org")
    subscriber.fields = {"city": "Lyon"}
    subscriber.consent = {"source": "form", "ip": "192.0.2.7"}
    subscriber.save()
    subscription = subscriber.subscriptions.get()
    subscriptions.unsubscribe(subscription, source="form", reason="too much mail")

    response = owner_client.get(url("subscriber-detail", subscriber.uuid))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Home town" in page and "Lyon" in page
    assert "192.0.2.7" in page
    assert "News" in page and "Unsubscribed" in page and "too much mail" in page
    assert "confirmed &rarr; unsubscribed" in page or "confirmed → unsubscribed" in page
    assert "blocked</span>" not in page


def test_detail_marks_an_address_blocked_by_its_domain(owner_client, owner, news) -> None:  # noqa: ANN001
    subscriber = put_on(news, "ann@example.org")
    blocklist.add_entries("example.org", account=owner)

    response = owner_client.get(url("subscriber-detail", subscriber.uuid))

    assert 'class="badge danger">blocked</span>' in response.content.decode()


# --- Edit -----------------------------------------------------------------------------------


def test_edit_saves_name_fields_and_the_normalised_address(owner_client, owner, news) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="age", label="Age", type="number")
    CustomFieldFactory(account=owner, key="vip", label="VIP", type="boolean")
    subscriber = put_on(news, "ann@example.org")
    subscriber.fields = {"legacy": "kept"}
    subscriber.save()

    response = owner_client.post(
        url("subscriber-edit", subscriber.uuid),
        {"email": "  Anna@Example.NET ", "name": "Anna", "field_age": "42", "field_vip": "yes"},
    )

    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.email == "Anna@example.net"
    assert subscriber.domain == "example.net"
    assert subscriber.name == "Anna"
    assert subscriber.fields == {"legacy": "kept", "age": 42, "vip": True}


def test_edit_refuses_an_address_another_subscriber_has_in_any_case(
    owner_client,
    owner,
    news,  # noqa: ANN001
) -> None:
    put_on(news, "bob@example.org")
    subscriber = put_on(news, "ann@example.org")

    response = owner_client.post(
        url("subscriber-edit", subscriber.uuid), {"email": "BOB@example.org", "name": ""}
    )

    assert response.status_code == 200
    assert "Another subscriber of this account already has the address" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.email == "ann@example.org"


def test_edit_reshows_invalid_values_with_their_errors(owner_client, owner, news) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="age", label="Age", type="number")
    subscriber = put_on(news, "ann@example.org")

    response = owner_client.post(
        url("subscriber-edit", subscriber.uuid),
        {"email": "ann@", "name": "", "field_age": "old"},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "This is not a usable address" in page
    assert "&#x27;old&#x27; is not a number" in page
    subscriber.refresh_from_db()
    assert subscriber.email == "ann@example.org"


# --- Delete ---------------------------------------------------------------------------------


def test_delete_asks_first_then_deletes_and_keeps_counts_right(
    owner_client,
    news,
    offers,  # noqa: ANN001
) -> None:
    subscriber = put_on(news, "ann@example.org")
    subscriptions.subscribe(offers, subscriber, status="pending", source="panel")

    confirm = owner_client.get(url("subscriber-delete", subscriber.uuid))
    assert confirm.status_code == 200
    assert Subscriber.objects.filter(id=subscriber.id).exists()

    response = owner_client.post(url("subscriber-delete", subscriber.uuid))

    assert response.status_code == 302
    assert not Subscriber.objects.filter(id=subscriber.id).exists()
    assert counts(news) == {"pending": 0, "confirmed": 0, "unsubscribed": 0}
    assert counts(offers) == {"pending": 0, "confirmed": 0, "unsubscribed": 0}


# --- Unsubscribe and resubscribe ------------------------------------------------------------


def test_unsubscribe_from_one_list_records_the_panel_and_the_actor(
    owner_client,
    owner,
    news,
    offers,  # noqa: ANN001
) -> None:
    subscriber = put_on(news, "ann@example.org")
    subscriptions.subscribe(offers, subscriber, status="confirmed", source="panel")

    response = owner_client.post(
        url("subscriber-unsubscribe", subscriber.uuid, news.uuid), {"reason": "asked by phone"}
    )

    assert response.status_code == 302
    on_news = Subscription.objects.get(mailing_list=news, subscriber=subscriber)
    assert on_news.status == "unsubscribed"
    assert on_news.unsubscribe_reason == "asked by phone"
    change = SubscriptionChange.objects.get(subscription=on_news)
    assert (change.source, change.actor) == ("panel", owner)
    assert Subscription.objects.get(mailing_list=offers, subscriber=subscriber).status == (
        "confirmed"
    )
    assert counts(news) == {"pending": 0, "confirmed": 0, "unsubscribed": 1}
    assert counts(offers) == {"pending": 0, "confirmed": 1, "unsubscribed": 0}


def test_unsubscribe_is_post_only(owner_client, news) -> None:  # noqa: ANN001
    subscriber = put_on(news, "ann@example.org")

    response = owner_client.get(url("subscriber-unsubscribe", subscriber.uuid, news.uuid))

    assert response.status_code == 405
    assert subscriber.subscriptions.get().status == "confirmed"


def test_resubscribe_warns_and_needs_the_owner_to_vouch(owner_client, owner, news) -> None:  # noqa: ANN001
    subscriber = put_on(news, "ann@example.org", status="unsubscribed")
    target = url("subscriber-resubscribe", subscriber.uuid, news.uuid)

    page = owner_client.get(target).content.decode()
    assert "You vouch for consent" in page

    refused = owner_client.post(target, {})
    assert refused.status_code == 200
    assert subscriber.subscriptions.get().status == "unsubscribed"

    response = owner_client.post(target, {"vouch": "on"})

    assert response.status_code == 302
    subscription = subscriber.subscriptions.get()
    assert subscription.status == "confirmed"
    change = subscription.changes.get()
    assert change.actor == owner and "vouched" in change.note
    assert counts(news) == {"pending": 0, "confirmed": 1, "unsubscribed": 0}


def test_resubscribe_refuses_a_blocked_address(owner_client, owner, news) -> None:  # noqa: ANN001
    subscriber = put_on(news, "ann@example.org", status="unsubscribed")
    blocklist.add_entries("ann@example.org", account=owner)

    owner_client.post(url("subscriber-resubscribe", subscriber.uuid, news.uuid), {"vouch": "on"})

    assert subscriber.subscriptions.get().status == "unsubscribed"


# --- Blocklist from the subscriber page -----------------------------------------------------


def test_blocklisting_a_subscriber_adds_an_account_entry(owner_client, owner, news) -> None:  # noqa: ANN001
    subscriber = put_on(news, "Ann@Example.org")

    response = owner_client.post(
        url("subscriber-blocklist", subscriber.uuid), {"reason": "abusive replies"}
    )

    assert response.status_code == 302
    entry = BlocklistEntry.objects.get()
    assert (entry.account, entry.kind, entry.value) == (owner, "address", "ann@example.org")
    assert entry.reason == "abusive replies" and entry.created_by == owner
    assert blocklist.is_blocked(subscriber.email, owner)
    page = owner_client.get(url("subscriber-detail", subscriber.uuid)).content.decode()
    assert 'class="badge danger">blocked</span>' in page


# --- Add to a list --------------------------------------------------------------------------


def test_add_creates_a_confirmed_subscriber_with_fields_and_consent(
    owner_client,
    owner,
    news,  # noqa: ANN001
) -> None:
    CustomFieldFactory(account=owner, key="city", label="City")

    response = owner_client.post(
        url("subscriber-add", news.uuid),
        {"email": "Ann@Example.ORG", "name": "Ann", "field_city": "Lyon", "status": "confirmed"},
    )

    subscriber = Subscriber.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("subscriber-detail", subscriber.uuid)
    assert (subscriber.email, subscriber.domain) == ("Ann@example.org", "example.org")
    assert subscriber.fields == {"city": "Lyon"}
    assert subscriber.consent["source"] == "panel"
    subscription = subscriber.subscriptions.get()
    assert (subscription.status, subscription.source) == ("confirmed", "panel")
    assert counts(news) == {"pending": 0, "confirmed": 1, "unsubscribed": 0}


def test_add_as_pending(owner_client, news) -> None:  # noqa: ANN001
    owner_client.post(
        url("subscriber-add", news.uuid), {"email": "ann@example.org", "status": "pending"}
    )

    assert Subscription.objects.get().status == "pending"
    assert counts(news) == {"pending": 1, "confirmed": 0, "unsubscribed": 0}


def test_add_reuses_the_existing_subscriber_of_the_account(owner_client, news, offers) -> None:  # noqa: ANN001
    subscriber = put_on(offers, "ann@example.org")

    owner_client.post(
        url("subscriber-add", news.uuid),
        {"email": "ann@example.org", "name": "Ann Smith", "status": "confirmed"},
    )

    assert Subscriber.objects.count() == 1
    subscriber.refresh_from_db()
    assert subscriber.name == "Ann Smith"
    assert set(subscriber.subscriptions.values_list("mailing_list__name", flat=True)) == {
        "News",
        "Offers",
    }
    assert counts(news)["confirmed"] == 1


def test_add_treats_a_case_variant_as_the_same_address(owner_client, news, offers) -> None:  # noqa: ANN001
    owner_client.post(
        url("subscriber-add", offers.uuid), {"email": "Ann@X.org", "status": "confirmed"}
    )
    owner_client.post(
        url("subscriber-add", news.uuid), {"email": "ann@x.org", "status": "confirmed"}
    )

    subscriber = Subscriber.objects.get()
    assert subscriber.email == "Ann@x.org"
    assert subscriber.subscriptions.count() == 2


def test_add_leaves_an_existing_subscription_alone(owner_client, news) -> None:  # noqa: ANN001
    put_on(news, "ann@example.org", status="unsubscribed")

    response = owner_client.post(
        url("subscriber-add", news.uuid), {"email": "ANN@example.org", "status": "confirmed"}
    )

    assert response.status_code == 302
    assert Subscription.objects.get().status == "unsubscribed"
    assert counts(news) == {"pending": 0, "confirmed": 0, "unsubscribed": 1}


def test_add_refuses_a_blocked_address_with_a_clear_message(owner_client, owner, news) -> None:  # noqa: ANN001
    blocklist.add_entries("blocked.example", account=None)

    response = owner_client.post(
        url("subscriber-add", news.uuid), {"email": "ann@Blocked.example", "status": "confirmed"}
    )

    assert response.status_code == 200
    assert "ann@blocked.example is on the blocklist" in response.content.decode()
    assert not Subscriber.objects.exists()
    assert counts(news)["confirmed"] == 0


def test_add_reshows_an_invalid_address_with_the_reason(owner_client, news) -> None:  # noqa: ANN001
    response = owner_client.post(
        url("subscriber-add", news.uuid), {"email": "ann at example.org", "status": "confirmed"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="ann at example.org"' in page
    assert "the address contains spaces" in page
    assert not Subscriber.objects.exists()


def test_add_refuses_a_bad_custom_field_value(owner_client, owner, news) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="born", label="Born", type="date")

    response = owner_client.post(
        url("subscriber-add", news.uuid),
        {"email": "ann@example.org", "field_born": "yesterday", "status": "confirmed"},
    )

    assert response.status_code == 200
    assert "is not a date" in response.content.decode()
    assert not Subscriber.objects.exists()
