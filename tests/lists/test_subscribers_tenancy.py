"""Who reaches which subscriber page: strangers get 404, viewers 403 on changes, managers
work on the subscribers of their delegated list only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists import subscriptions
from lists.models import BlocklistEntry, ListRole, MailingList, Subscriber
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def list_a(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="List A")


@pytest.fixture
def list_b(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="List B")


def put_on(mailing_list: MailingList, email: str, status: str = "confirmed") -> Subscriber:
    subscriber, _ = subscriptions.find_or_create_subscriber(mailing_list.owner, email)
    subscriptions.subscribe(mailing_list, subscriber, status=status, source="panel")
    return subscriber


def grant(mailing_list: MailingList, user: object, role: str) -> None:
    ListRole.objects.create(mailing_list=mailing_list, user=user, role=role)


def change_requests(subscriber: Subscriber, mailing_list: MailingList) -> list[tuple[str, str]]:
    """Every request that changes something, as (method, url)."""
    s, lst = subscriber.uuid, mailing_list.uuid
    return [
        ("get", reverse("lists:subscriber-edit", args=[s])),
        ("post", reverse("lists:subscriber-edit", args=[s])),
        ("get", reverse("lists:subscriber-delete", args=[s])),
        ("post", reverse("lists:subscriber-blocklist", args=[s])),
        ("post", reverse("lists:subscriber-unsubscribe", args=[s, lst])),
        ("get", reverse("lists:subscriber-resubscribe", args=[s, lst])),
        ("post", reverse("lists:subscriber-resubscribe", args=[s, lst])),
        ("get", reverse("lists:subscriber-add", args=[lst])),
        ("post", reverse("lists:subscriber-add", args=[lst])),
        ("post", reverse("lists:subscriber-delete", args=[s])),
    ]


CHANGE_DATA = {"email": "new@example.org", "name": "X", "status": "confirmed", "vouch": "on"}


def test_the_owner_reaches_every_page(client, owner, list_a) -> None:  # noqa: ANN001
    # The same requests as the forbidden cases below, so those cannot fail for another reason.
    subscriber = put_on(list_a, "ann@example.org", status="unsubscribed")
    client.force_login(owner)
    assert client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid])).status_code == 200
    for method, path in change_requests(subscriber, list_a):
        response = getattr(client, method)(path, CHANGE_DATA)
        assert response.status_code in (200, 302), f"{method} {path}: {response.status_code}"
    assert not Subscriber.objects.filter(id=subscriber.id).exists()


def test_stranger_gets_404_everywhere(client, stranger, list_a) -> None:  # noqa: ANN001
    subscriber = put_on(list_a, "ann@example.org", status="unsubscribed")
    client.force_login(stranger)

    detail = client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid]))
    assert detail.status_code == 404
    for method, path in change_requests(subscriber, list_a):
        response = getattr(client, method)(path, CHANGE_DATA)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    subscriber.refresh_from_db()
    assert subscriber.email == "ann@example.org"
    assert Subscriber.objects.filter(account=list_a.owner).count() == 1
    assert not BlocklistEntry.objects.exists()


def test_viewer_sees_the_subscriber_but_gets_403_on_every_change(
    client,
    delegate,
    list_a,  # noqa: ANN001
) -> None:
    subscriber = put_on(list_a, "ann@example.org", status="unsubscribed")
    grant(list_a, delegate, "viewer")
    client.force_login(delegate)

    detail = client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid]))
    assert detail.status_code == 200
    assert "Edit</a>" not in detail.content.decode()
    for method, path in change_requests(subscriber, list_a):
        response = getattr(client, method)(path, CHANGE_DATA)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
    assert subscriber.subscriptions.get().status == "unsubscribed"
    assert Subscriber.objects.count() == 1


def test_manager_edits_and_unsubscribes_subscribers_of_the_delegated_list(
    client,
    delegate,
    list_a,  # noqa: ANN001
) -> None:
    subscriber = put_on(list_a, "ann@example.org")
    grant(list_a, delegate, "manager")
    client.force_login(delegate)

    edited = client.post(
        reverse("lists:subscriber-edit", args=[subscriber.uuid]),
        {"email": "ann@example.org", "name": "Ann by Dan"},
    )
    unsubscribed = client.post(
        reverse("lists:subscriber-unsubscribe", args=[subscriber.uuid, list_a.uuid])
    )
    added = client.post(
        reverse("lists:subscriber-add", args=[list_a.uuid]),
        {"email": "bob@example.org", "status": "pending"},
    )

    assert (edited.status_code, unsubscribed.status_code, added.status_code) == (302, 302, 302)
    subscriber.refresh_from_db()
    assert subscriber.name == "Ann by Dan"
    assert subscriber.subscriptions.get().status == "unsubscribed"
    # The new subscriber belongs to the list owner's account, not the manager's.
    assert Subscriber.objects.get(email="bob@example.org").account == list_a.owner


def test_manager_may_not_delete_or_block_for_the_whole_account(
    client,
    delegate,
    list_a,  # noqa: ANN001
) -> None:
    subscriber = put_on(list_a, "ann@example.org")
    grant(list_a, delegate, "manager")
    client.force_login(delegate)

    deleted = client.post(reverse("lists:subscriber-delete", args=[subscriber.uuid]))
    blocked = client.post(reverse("lists:subscriber-blocklist", args=[subscriber.uuid]))

    assert (deleted.status_code, blocked.status_code) == (403, 403)
    assert Subscriber.objects.filter(id=subscriber.id).exists()
    assert not BlocklistEntry.objects.exists()


def test_manager_of_list_a_cannot_see_a_subscriber_only_on_list_b(
    client,
    delegate,
    list_a,
    list_b,  # noqa: ANN001
) -> None:
    put_on(list_a, "ann@example.org")
    only_on_b = put_on(list_b, "bob@example.org")
    grant(list_a, delegate, "manager")
    client.force_login(delegate)

    assert client.get(reverse("lists:subscriber-detail", args=[only_on_b.uuid])).status_code == 404
    edit = client.post(
        reverse("lists:subscriber-edit", args=[only_on_b.uuid]),
        {"email": "x@example.org", "name": ""},
    )
    assert edit.status_code == 404
    add_to_b = client.post(
        reverse("lists:subscriber-add", args=[list_b.uuid]), {"email": "c@example.org"}
    )
    assert add_to_b.status_code == 404


def test_manager_sees_only_the_subscriptions_of_granted_lists(
    client,
    delegate,
    list_a,
    list_b,  # noqa: ANN001
) -> None:
    subscriber = put_on(list_a, "ann@example.org")
    subscriptions.subscribe(list_b, subscriber, status="confirmed", source="panel")
    grant(list_a, delegate, "manager")
    client.force_login(delegate)

    page = client.get(reverse("lists:subscriber-detail", args=[subscriber.uuid]))
    unsubscribe_b = client.post(
        reverse("lists:subscriber-unsubscribe", args=[subscriber.uuid, list_b.uuid])
    )

    assert "List A" in page.content.decode()
    assert "List B" not in page.content.decode()
    assert unsubscribe_b.status_code == 404
    assert subscriber.subscriptions.get(mailing_list=list_b).status == "confirmed"


def test_a_manager_who_views_another_list_changes_only_the_managed_one(
    client,
    delegate,
    list_a,
    list_b,  # noqa: ANN001
) -> None:
    subscriber = put_on(list_a, "ann@example.org")
    subscriptions.subscribe(list_b, subscriber, status="confirmed", source="panel")
    grant(list_a, delegate, "manager")
    grant(list_b, delegate, "viewer")
    client.force_login(delegate)

    on_b = client.post(reverse("lists:subscriber-unsubscribe", args=[subscriber.uuid, list_b.uuid]))
    on_a = client.post(reverse("lists:subscriber-unsubscribe", args=[subscriber.uuid, list_a.uuid]))

    assert (on_b.status_code, on_a.status_code) == (403, 302)
    assert subscriber.subscriptions.get(mailing_list=list_b).status == "confirmed"


def test_revoking_a_role_takes_effect_at_once(client, delegate, list_a) -> None:  # noqa: ANN001
    subscriber = put_on(list_a, "ann@example.org")
    grant(list_a, delegate, "manager")
    client.force_login(delegate)
    detail = reverse("lists:subscriber-detail", args=[subscriber.uuid])
    assert client.get(detail).status_code == 200

    ListRole.objects.filter(user=delegate).delete()

    assert client.get(detail).status_code == 404
