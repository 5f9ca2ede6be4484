"""The operators' admin for lists: every changelist loads, searches use indexes, and the
global blocklist can be filled one entry or many at a time."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists import subscriptions
from lists.models import BlocklistEntry, BulkJob, ImportJob, ListRole, Subscriber
from tests.factories import (
    BlocklistEntryFactory,
    CustomFieldFactory,
    MailingListFactory,
    SegmentFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

MODELS = [
    "mailinglist",
    "subscriber",
    "subscription",
    "listrole",
    "customfield",
    "segment",
    "blocklistentry",
    "importjob",
    "bulkjob",
]


@pytest.fixture
def data(owner, delegate):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    subscription = SubscriptionFactory(mailing_list=mailing_list)
    ListRole.objects.create(mailing_list=mailing_list, user=delegate, role="viewer")
    CustomFieldFactory(account=owner)
    SegmentFactory(account=owner)
    BlocklistEntryFactory(account=owner)
    BlocklistEntryFactory(account=None, kind="domain", value="global.example")
    ImportJob.objects.create(
        account=owner, mailing_list=mailing_list, file="imports/x.csv", original_name="x.csv"
    )
    BulkJob.objects.create(account=owner, mailing_list=mailing_list, action="unsubscribe")
    return subscription


@pytest.mark.parametrize("model", MODELS)
def test_changelists_and_change_pages_load_for_an_operator(operator_client, data, model) -> None:  # noqa: ANN001
    changelist = operator_client.get(reverse(f"admin:lists_{model}_changelist"))

    assert changelist.status_code == 200
    obj = changelist.context["cl"].result_list[0]
    change = operator_client.get(reverse(f"admin:lists_{model}_change", args=[obj.pk]))
    assert change.status_code == 200


def test_operators_see_every_accounts_subscribers(operator_client, owner, stranger) -> None:  # noqa: ANN001
    SubscriberFactory(account=owner, email="ann@example.org")
    SubscriberFactory(account=stranger, email="sam@example.net")

    page = operator_client.get(reverse("admin:lists_subscriber_changelist")).content.decode()

    assert "ann@example.org" in page and "sam@example.net" in page


def test_panel_users_do_not_reach_the_admin(owner_client) -> None:  # noqa: ANN001
    response = owner_client.get(reverse("admin:lists_subscriber_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_subscriber_search_by_address_domain_or_account(operator_client, owner, stranger) -> None:  # noqa: ANN001
    SubscriberFactory(account=owner, email="Ann@example.org")
    SubscriberFactory(account=owner, email="bob@other.example")
    SubscriberFactory(account=stranger, email="carl@example.org")
    url = reverse("admin:lists_subscriber_changelist")

    def found(term: str) -> set[str]:
        response = operator_client.get(url, {"q": term})
        return {s.email for s in response.context["cl"].result_list}

    assert found("ANN@example.org") == {"Ann@example.org"}
    assert found("example.org") == {"Ann@example.org", "carl@example.org"}
    assert found(stranger.username) == {"carl@example.org"}


def test_subscription_search_by_subscriber_address(operator_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    wanted = SubscriptionFactory(mailing_list=mailing_list, subscriber__email="ann@example.org")
    SubscriptionFactory(mailing_list=mailing_list, subscriber__email="bob@example.org")

    response = operator_client.get(
        reverse("admin:lists_subscription_changelist"), {"q": "ann@example.org"}
    )

    assert list(response.context["cl"].result_list) == [wanted]


def test_deleting_a_subscriber_in_the_admin_keeps_list_counts_right(operator_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    subscriber, _ = subscriptions.find_or_create_subscriber(owner, "ann@example.org")
    subscriptions.subscribe(mailing_list, subscriber, status="confirmed", source="panel")

    operator_client.post(
        reverse("admin:lists_subscriber_changelist"),
        {"action": "delete_with_counts", "_selected_action": [subscriber.pk]},
    )

    mailing_list.refresh_from_db()
    assert not Subscriber.objects.exists()
    assert mailing_list.confirmed_count == 0


def test_an_operator_adds_a_global_domain_entry(operator_client, operator) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:lists_blocklistentry_add"),
        {"account": "", "kind": "", "value": "@Spam.Example", "reason": "spam source"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = BlocklistEntry.objects.get()
    assert (entry.account, entry.kind, entry.value) == (None, "domain", "spam.example")
    assert entry.created_by == operator


def test_a_duplicate_global_entry_is_refused_in_the_form(operator_client) -> None:  # noqa: ANN001
    BlocklistEntryFactory(account=None, value="ann@example.org")

    response = operator_client.post(
        reverse("admin:lists_blocklistentry_add"),
        {"account": "", "kind": "", "value": "ANN@example.org", "reason": ""},
    )

    assert response.status_code == 200
    assert BlocklistEntry.objects.count() == 1


def test_an_invalid_entry_is_refused_with_the_reason(operator_client) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:lists_blocklistentry_add"),
        {"account": "", "kind": "", "value": "ann@", "reason": ""},
    )

    assert "the domain is missing" in response.content.decode()
    assert not BlocklistEntry.objects.exists()


def test_operators_paste_many_global_entries(operator_client, operator) -> None:  # noqa: ANN001
    BlocklistEntryFactory(account=None, value="old@example.org")
    changelist = operator_client.get(reverse("admin:lists_blocklistentry_changelist"))
    assert reverse("admin:lists_blocklistentry_paste") in changelist.content.decode()

    response = operator_client.post(
        reverse("admin:lists_blocklistentry_paste"),
        {"entries": "a@example.org, old@example.org\nbad.example\nnope@", "reason": "abuse"},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Added 2, already there 1, invalid 1." in page
    assert "<code>nope@</code>" in page
    assert set(BlocklistEntry.objects.values_list("account", "value")) == {
        (None, "a@example.org"),
        (None, "old@example.org"),
        (None, "bad.example"),
    }


def test_import_and_bulk_jobs_are_read_only(operator_client, data) -> None:  # noqa: ANN001
    assert operator_client.get(reverse("admin:lists_importjob_add")).status_code == 403
    assert operator_client.get(reverse("admin:lists_bulkjob_add")).status_code == 403
    job = ImportJob.objects.get()
    response = operator_client.post(
        reverse("admin:lists_importjob_change", args=[job.pk]), {"status": "done"}
    )
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "uploaded"


def test_an_operators_address_edit_is_normalised_and_checked(operator_client, owner) -> None:  # noqa: ANN001
    SubscriberFactory(account=owner, email="bob@example.org")
    subscriber = SubscriberFactory(account=owner, email="ann@example.org")
    url = reverse("admin:lists_subscriber_change", args=[subscriber.pk])
    inline = {
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
        "subscriptions-MIN_NUM_FORMS": "0",
        "subscriptions-MAX_NUM_FORMS": "1000",
    }
    base = {"account": owner.pk, "name": "Ann", **inline}

    taken = operator_client.post(url, {**base, "email": "BOB@example.org"})
    saved = operator_client.post(url, {**base, "email": " Ann@New.Example "})

    assert taken.status_code == 200
    assert "subscriber_unique_email_per_account" in str(taken.context["adminform"].form.errors)
    assert saved.status_code == 302
    subscriber.refresh_from_db()
    assert (subscriber.email, subscriber.domain) == ("Ann@new.example", "new.example")
