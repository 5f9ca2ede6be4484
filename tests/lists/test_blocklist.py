"""The blocklist: matching by address and by domain, global vs account entries, and the
account blocklist page (paste report, remove, search, pages, blocked subscribers)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists import blocklist
from lists.models import BlocklistEntry, Subscriber
from lists.views.blocklist import _blocked_subscribers
from tests.factories import BlocklistEntryFactory, SubscriberFactory, UserFactory

pytestmark = pytest.mark.django_db


def blocked_emails() -> set[str]:
    queryset = blocklist.annotate_email_key(Subscriber.objects.all())
    return set(queryset.filter(blocklist.blocked_subscribers_q()).values_list("email", flat=True))


# --- Matching -------------------------------------------------------------------------------


def test_an_address_entry_blocks_that_address_in_any_case(owner) -> None:  # noqa: ANN001
    blocklist.add_entries("Ann@Example.org", account=owner)

    assert blocklist.is_blocked("ANN@example.ORG", owner)
    assert not blocklist.is_blocked("bob@example.org", owner)


def test_a_domain_entry_blocks_every_address_at_exactly_that_domain(owner) -> None:  # noqa: ANN001
    blocklist.add_entries("@Spam.Example", account=owner)

    assert blocklist.is_blocked("anyone@spam.example", owner)
    assert not blocklist.is_blocked("anyone@sub.spam.example", owner)
    assert not blocklist.is_blocked("anyone@notspam.example", owner)


def test_account_entries_hold_for_that_account_only_and_global_ones_for_all(
    owner,
    stranger,  # noqa: ANN001
) -> None:
    blocklist.add_entries("ann@example.org", account=owner)
    blocklist.add_entries("global.example", account=None)

    assert blocklist.is_blocked("ann@example.org", owner)
    assert not blocklist.is_blocked("ann@example.org", stranger)
    assert blocklist.is_blocked("x@global.example", owner)
    assert blocklist.is_blocked("x@global.example", stranger)


def test_blocked_subscribers_q_matches_by_address_domain_and_scope(owner, stranger) -> None:  # noqa: ANN001
    SubscriberFactory(account=owner, email="Ann@example.org")
    SubscriberFactory(account=stranger, email="ann@example.org")
    SubscriberFactory(account=owner, email="x@spam.example")
    SubscriberFactory(account=stranger, email="y@global.example")
    SubscriberFactory(account=owner, email="fine@example.org")
    blocklist.add_entries("ann@example.org\nspam.example", account=owner)
    blocklist.add_entries("global.example", account=None)

    assert blocked_emails() == {"Ann@example.org", "x@spam.example", "y@global.example"}


# --- The page -------------------------------------------------------------------------------


def test_page_shows_account_and_global_entries_but_not_other_accounts(
    owner_client,
    owner,
    stranger,  # noqa: ANN001
) -> None:
    BlocklistEntryFactory(account=owner, value="mine@example.org")
    BlocklistEntryFactory(account=None, kind="domain", value="global.example")
    BlocklistEntryFactory(account=stranger, value="theirs@example.org")

    page = owner_client.get(reverse("lists:blocklist")).content.decode()

    assert "mine@example.org" in page
    assert "global.example" in page and ">global</span>" in page
    assert "theirs@example.org" not in page


def test_pasting_reports_added_existing_and_each_invalid_line(owner_client, owner) -> None:  # noqa: ANN001
    BlocklistEntryFactory(account=owner, value="old@example.org")
    text = "new@example.org, OLD@example.org\n@spam.example\nnot an address\nx@-bad-.org\n\n"

    response = owner_client.post(reverse("lists:blocklist"), {"entries": text, "reason": "spam"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Added 2, already there 1, invalid 2." in page
    assert "<code>not an address</code>: the domain" in page
    assert "<code>x@-bad-.org</code>: the domain" in page
    values = set(BlocklistEntry.objects.filter(account=owner).values_list("kind", "value"))
    assert values == {
        ("address", "old@example.org"),
        ("address", "new@example.org"),
        ("domain", "spam.example"),
    }
    assert BlocklistEntry.objects.get(value="spam.example").reason == "spam"


def test_pasting_too_many_lines_is_refused_whole(owner_client, owner) -> None:  # noqa: ANN001
    text = "\n".join(f"a{i}@example.org" for i in range(5001))

    response = owner_client.post(reverse("lists:blocklist"), {"entries": text})

    assert "paste at most 5,000 at once" in response.content.decode()
    assert not BlocklistEntry.objects.exists()


def test_removing_an_own_entry(owner_client, owner) -> None:  # noqa: ANN001
    BlocklistEntryFactory(account=owner, value="ann@example.org")

    response = owner_client.post(
        reverse("lists:blocklist-remove"), {"kind": "address", "value": "ann@example.org"}
    )

    assert response.status_code == 302
    assert not BlocklistEntry.objects.exists()


def test_global_and_other_accounts_entries_cannot_be_removed(owner_client, stranger) -> None:  # noqa: ANN001
    BlocklistEntryFactory(account=None, value="ann@example.org")
    BlocklistEntryFactory(account=stranger, value="ann@example.org")

    owner_client.post(
        reverse("lists:blocklist-remove"), {"kind": "address", "value": "ann@example.org"}
    )

    assert BlocklistEntry.objects.count() == 2


def test_search_and_pages(owner_client, owner) -> None:  # noqa: ANN001
    for i in range(55):
        BlocklistEntryFactory(account=owner, value=f"user{i:02d}@example.org")
    BlocklistEntryFactory(account=owner, kind="domain", value="needle.example")

    first = owner_client.get(reverse("lists:blocklist")).content.decode()
    second = owner_client.get(reverse("lists:blocklist"), {"page": 2}).content.decode()
    found = owner_client.get(reverse("lists:blocklist"), {"q": "NEEDLE"}).content.decode()

    assert "Page 1 of 2" in first and "user00@example.org" in first
    assert "user54@example.org" not in first and "user54@example.org" in second
    assert "needle.example" in found and "user00@example.org" not in found


def test_the_page_counts_blocked_subscribers_in_one_query(
    owner_client,
    owner,
    stranger,
    django_assert_num_queries,  # noqa: ANN001
) -> None:
    SubscriberFactory(account=owner, email="ann@example.org")
    SubscriberFactory(account=owner, email="bob@spam.example")
    SubscriberFactory(account=owner, email="fine@example.org")
    SubscriberFactory(account=stranger, email="carl@spam.example")
    blocklist.add_entries("ann@example.org", account=owner)
    blocklist.add_entries("spam.example", account=None)
    with django_assert_num_queries(1):
        assert _blocked_subscribers(owner).count() == 2
    page = owner_client.get(reverse("lists:blocklist")).content.decode()
    assert "<strong>2</strong> of your subscribers are blocked" in page


def test_blocked_subscribers_page_lists_only_the_accounts_blocked_subscribers(
    owner_client,
    owner,
    stranger,  # noqa: ANN001
) -> None:
    SubscriberFactory(account=owner, email="bob@spam.example")
    SubscriberFactory(account=owner, email="fine@example.org")
    SubscriberFactory(account=stranger, email="carl@spam.example")
    blocklist.add_entries("spam.example", account=None)

    page = owner_client.get(reverse("lists:blocklist-subscribers")).content.decode()

    assert "bob@spam.example" in page
    assert "fine@example.org" not in page and "carl@spam.example" not in page


def test_blocked_subscribers_page_pages_by_keyset(owner_client, owner) -> None:  # noqa: ANN001
    for i in range(51):
        SubscriberFactory(account=owner, email=f"s{i:02d}@spam.example")
    blocklist.add_entries("spam.example", account=owner)

    first = owner_client.get(reverse("lists:blocklist-subscribers"))
    last_id = Subscriber.objects.order_by("id").values_list("id", flat=True)[49]
    second = owner_client.get(reverse("lists:blocklist-subscribers"), {"after": last_id})

    assert "s49@spam.example" in first.content.decode()
    assert "s50@spam.example" not in first.content.decode()
    assert f"?after={last_id}" in first.content.decode()
    assert "s50@spam.example" in second.content.decode()


def test_each_account_has_its_own_blocklist_page(client) -> None:  # noqa: ANN001
    someone = UserFactory()
    client.force_login(someone)

    response = client.post(reverse("lists:blocklist"), {"entries": "x@example.org"})

    assert response.status_code == 200
    assert BlocklistEntry.objects.get().account == someone
