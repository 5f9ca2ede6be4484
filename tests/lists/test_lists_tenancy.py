"""Who may open which list URL: the owner, a manager, a viewer, a stranger.

Every case shares the same list and posts, so a forbidden answer cannot come from a
missing object or a bad form.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists.models import BlocklistEntry, BulkJob, ListRole, MailingList, Subscription
from tests.factories import MailingListFactory, SubscriptionFactory, UserFactory

# (url name, method, post data); every one takes the list uuid.
READS = [("lists:detail", "get"), ("lists:bulk-jobs", "get")]
CHANGES = [
    ("lists:edit", "get"),
    ("lists:edit", "post"),
    ("lists:bulk", "post"),
]
OWNER_ONLY = [
    ("lists:delete", "get"),
    ("lists:delete", "post"),
    ("lists:delegation", "get"),
    ("lists:delegation", "post"),
    ("lists:delegation-revoke", "post"),
]
EVERY = READS + CHANGES + OWNER_ONLY


@pytest.fixture
def setup(owner, delegate):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner, name="Owner's news")
    subscription = SubscriptionFactory(mailing_list=mailing_list)
    role = ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="viewer")
    return mailing_list, subscription, role


def _post_data(name: str, setup) -> dict[str, object]:  # noqa: ANN001
    mailing_list, subscription, role = setup
    return {
        "lists:edit": {"name": "Renamed", "from_email": "", "reply_to": ""},
        "lists:bulk": {
            "action": "unsubscribe",
            "scope": "selected",
            "ids": [subscription.subscriber_id],
        },
        "lists:delegation": {"user": "someone-else", "role": "viewer"},
        "lists:delegation-revoke": {"role_id": role.id},
    }.get(name, {})


def _call(client, name: str, method: str, setup):  # noqa: ANN001, ANN202
    url = reverse(name, args=[setup[0].uuid])
    if method == "get":
        return client.get(url)
    return client.post(url, _post_data(name, setup))


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), EVERY)
def test_stranger_gets_404(client, stranger, setup, name: str, method: str) -> None:  # noqa: ANN001
    client.force_login(stranger)
    assert _call(client, name, method, setup).status_code == 404
    assert MailingList.objects.filter(name="Owner's news").exists()
    assert Subscription.objects.get(id=setup[1].id).status == "confirmed"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), CHANGES + OWNER_ONLY)
def test_viewer_gets_403_on_changes(client, delegate, setup, name: str, method: str) -> None:  # noqa: ANN001
    client.force_login(delegate)
    assert _call(client, name, method, setup).status_code == 403
    assert MailingList.objects.filter(name="Owner's news").exists()
    assert Subscription.objects.get(id=setup[1].id).status == "confirmed"
    assert ListRole.objects.filter(id=setup[2].id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), READS)
def test_viewer_reads(client, delegate, setup, name: str, method: str) -> None:  # noqa: ANN001
    client.force_login(delegate)
    assert _call(client, name, method, setup).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), OWNER_ONLY)
def test_manager_gets_403_on_owner_only_pages(
    client, delegate, setup, name: str, method: str
) -> None:  # noqa: ANN001
    ListRole.objects.filter(id=setup[2].id).update(role="manager")
    client.force_login(delegate)
    assert _call(client, name, method, setup).status_code == 403
    assert MailingList.objects.filter(name="Owner's news").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), READS + CHANGES)
def test_manager_may_change_the_list(client, delegate, setup, name: str, method: str) -> None:  # noqa: ANN001
    ListRole.objects.filter(id=setup[2].id).update(role="manager")
    client.force_login(delegate)
    assert _call(client, name, method, setup).status_code in (200, 302)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), EVERY)
def test_owner_may_do_everything(client, owner, setup, name: str, method: str) -> None:  # noqa: ANN001
    UserFactory(username="someone-else")
    client.force_login(owner)
    assert _call(client, name, method, setup).status_code in (200, 302)


@pytest.mark.django_db
def test_bulk_into_a_list_the_user_cannot_edit_is_404(client, delegate, setup) -> None:  # noqa: ANN001
    mailing_list, subscription, role = setup
    ListRole.objects.filter(id=role.id).update(role="manager")
    # Viewer of another of the owner's lists: may see it, not add to it.
    other = MailingListFactory(owner=mailing_list.owner)
    ListRole.objects.create(mailing_list=other, user=delegate, role="viewer")
    client.force_login(delegate)
    response = client.post(
        reverse("lists:bulk", args=[mailing_list.uuid]),
        {
            "action": "add_to_list",
            "scope": "selected",
            "target": str(other.uuid),
            "ids": [subscription.subscriber_id],
        },
    )
    assert response.status_code == 404
    assert not Subscription.objects.filter(mailing_list=other).exists()
    ListRole.objects.filter(mailing_list=other, user=delegate).update(role="manager")
    response = client.post(
        reverse("lists:bulk", args=[mailing_list.uuid]),
        {
            "action": "add_to_list",
            "scope": "selected",
            "target": str(other.uuid),
            "ids": [subscription.subscriber_id],
        },
    )
    assert response.status_code == 302
    assert Subscription.objects.filter(mailing_list=other).count() == 1


@pytest.mark.django_db
def test_bulk_ids_of_another_list_are_ignored(owner_client, owner, stranger) -> None:  # noqa: ANN001
    mine = MailingListFactory(owner=owner)
    theirs = SubscriptionFactory(mailing_list=MailingListFactory(owner=stranger))
    response = owner_client.post(
        reverse("lists:bulk", args=[mine.uuid]),
        {"action": "delete", "scope": "selected", "ids": [theirs.subscriber_id]},
    )
    assert response.status_code == 302
    assert Subscription.objects.filter(id=theirs.id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["delete", "blocklist"])
@pytest.mark.parametrize("scope", ["selected", "filter"])
@pytest.mark.parametrize(("role", "expected"), [("manager", 403), (None, 404), ("owner", 302)])
def test_only_the_owner_may_bulk_delete_or_blocklist(
    client, owner, delegate, action: str, scope: str, role: str | None, expected: int
) -> None:  # noqa: ANN001
    # The subscriber is also on the owner's other list, which the manager cannot see.
    mailing_list = MailingListFactory(owner=owner)
    other = MailingListFactory(owner=owner)
    subscription = SubscriptionFactory(mailing_list=mailing_list, subscriber__account=owner)
    SubscriptionFactory(mailing_list=other, subscriber=subscription.subscriber)
    if role == "manager":
        ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="manager")
    client.force_login(owner if role == "owner" else delegate)

    response = client.post(
        reverse("lists:bulk", args=[mailing_list.uuid]),
        {"action": action, "scope": scope, "ids": [subscription.subscriber_id]},
    )

    assert response.status_code == expected
    # Done in the request (a small selection) or queued as a job (a whole filter).
    done = (
        not Subscription.objects.filter(mailing_list=other).exists()
        or BlocklistEntry.objects.exists()
        or BulkJob.objects.exists()
    )
    assert done == (role == "owner")


@pytest.mark.django_db
def test_a_manager_is_not_offered_account_wide_bulk_actions(client, owner, delegate) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list, subscriber__account=owner)
    ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="manager")
    url = reverse("lists:detail", args=[mailing_list.uuid])
    client.force_login(delegate)
    manager_page = client.get(url).content.decode()
    client.force_login(owner)
    owner_page = client.get(url).content.decode()

    for value in ("delete", "blocklist"):
        assert f'value="{value}"' in owner_page
        assert f'value="{value}"' not in manager_page
    assert 'value="unsubscribe"' in manager_page
