"""The list index and the list pages: create, edit, delete, counts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from lists import subscriptions
from lists.models import MailingList, Subscriber, Subscription
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory


@pytest.mark.django_db
def test_empty_index_invites_to_create_the_first_list(owner_client) -> None:  # noqa: ANN001
    page = owner_client.get(reverse("lists:index")).content.decode()
    assert "Create your first list" in page
    assert reverse("lists:create") in page


@pytest.mark.django_db
def test_index_shows_counts_from_the_count_columns(
    owner_client,
    owner,
    django_assert_max_num_queries,  # noqa: ANN001
) -> None:
    for name in ("Alpha", "Beta", "Gamma"):
        MailingListFactory(owner=owner, name=name, confirmed_count=1234, complained_count=7)
    with django_assert_max_num_queries(4):
        page = owner_client.get(reverse("lists:index")).content.decode()
    assert page.count("1234") == 3
    assert "owner" in page


@pytest.mark.django_db
@pytest.mark.parametrize("with_lists", [False, True])
def test_index_links_to_segments_custom_fields_and_the_blocklist(
    owner_client, owner, with_lists: bool
) -> None:  # noqa: ANN001
    if with_lists:
        MailingListFactory(owner=owner)
    page = owner_client.get(reverse("lists:index")).content.decode()
    for name in ("lists:segment-index", "lists:field-index", "lists:blocklist"):
        assert f'href="{reverse(name)}"' in page, name


@pytest.mark.django_db
def test_create_list_defaults_the_sender_from_the_account(owner_client, owner) -> None:  # noqa: ANN001
    owner.default_from_name = "Olivia's shop"
    owner.default_from_email = "hello@olivia.example"
    owner.save()
    page = owner_client.get(reverse("lists:create")).content.decode()
    assert "hello@olivia.example" in page
    response = owner_client.post(
        reverse("lists:create"),
        {"name": "Weekly", "from_name": "Olivia's shop", "from_email": "hello@olivia.example"},
    )
    mailing_list = MailingList.objects.get(name="Weekly")
    assert mailing_list.owner == owner
    assert response["Location"] == reverse("lists:detail", args=[mailing_list.uuid])


@pytest.mark.django_db
def test_edit_list_saves_settings(owner_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    owner_client.post(
        reverse("lists:edit", args=[mailing_list.uuid]),
        {"name": "Renamed", "from_name": "X", "from_email": "x@example.org", "reply_to": ""},
    )
    mailing_list.refresh_from_db()
    assert (mailing_list.name, mailing_list.double_opt_in) == ("Renamed", False)


@pytest.mark.django_db
def test_delete_asks_first_and_keeps_the_subscribers(owner_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    person = SubscriberFactory(account=owner)
    subscription, _ = subscriptions.subscribe(
        mailing_list, person, status="confirmed", source="panel"
    )
    subscriptions.change_status(subscription, "unsubscribed", source="panel")
    url = reverse("lists:delete", args=[mailing_list.uuid])
    assert "cannot be undone" in owner_client.get(url).content.decode()
    assert MailingList.objects.filter(id=mailing_list.id).exists()
    assert owner_client.post(url)["Location"] == reverse("lists:index")
    assert not MailingList.objects.filter(id=mailing_list.id).exists()
    assert not Subscription.objects.exists()
    assert Subscriber.objects.filter(id=subscription.subscriber_id).exists()


@pytest.mark.django_db
def test_list_page_shows_counts_after_changes(owner_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    people = [SubscriberFactory(account=owner) for _ in range(3)]
    for person in people:
        subscriptions.subscribe(mailing_list, person, status="confirmed", source="panel")
    subscription = Subscription.objects.get(subscriber=people[0])
    subscriptions.unsubscribe(subscription, source="panel")
    page = owner_client.get(reverse("lists:detail", args=[mailing_list.uuid])).content.decode()
    assert '<dt>Confirmed</dt><dd class="num">2</dd>' in page
    assert '<dt>Unsubscribed</dt><dd class="num">1</dd>' in page
    for person in people:
        assert person.email in page


@pytest.mark.django_db
def test_viewer_sees_no_change_controls(client, owner, delegate) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    SubscriptionFactory(mailing_list=mailing_list)
    mailing_list.roles.create(user=delegate, role="viewer")
    client.force_login(delegate)
    page = client.get(reverse("lists:detail", args=[mailing_list.uuid])).content.decode()
    assert "You are <strong>viewer</strong>" in page
    assert reverse("lists:bulk", args=[mailing_list.uuid]) not in page
    assert reverse("lists:edit", args=[mailing_list.uuid]) not in page
    assert reverse("lists:delete", args=[mailing_list.uuid]) not in page


@pytest.mark.django_db
def test_search_and_filter_on_the_page(owner_client, owner) -> None:  # noqa: ANN001
    mailing_list = MailingListFactory(owner=owner)
    # Names are fixed: a random one ("Andrew ...") would match the search below.
    for email, name, status in [
        ("ann@example.org", "Ann Lee", "confirmed"),
        ("bob@example.org", "Bob Stone", "pending"),
    ]:
        SubscriptionFactory(
            mailing_list=mailing_list,
            subscriber=SubscriberFactory(account=owner, email=email, name=name),
            status=status,
        )
    url = reverse("lists:detail", args=[mailing_list.uuid])
    page = owner_client.get(url, {"q": "AN"}).content.decode()
    assert "ann@example.org" in page
    assert "bob@example.org" not in page
    page = owner_client.get(url, {"status": "pending"}).content.decode()
    assert "bob@example.org" in page
    assert "ann@example.org" not in page
    page = owner_client.get(url, {"q": "zed"}).content.decode()
    assert "No subscriber matches this filter" in page


@pytest.mark.django_db
def test_blocked_subscribers_are_marked_on_the_list_page_without_a_query_per_row(
    owner_client, owner, stranger, django_assert_num_queries
) -> None:  # noqa: ANN001
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import BlocklistEntryFactory

    mailing_list = MailingListFactory(owner=owner)
    for email in ("ann@example.org", "bob@spam.test", "carl@example.net", "dora@example.com"):
        SubscriptionFactory(
            mailing_list=mailing_list, subscriber=SubscriberFactory(account=owner, email=email)
        )
    BlocklistEntryFactory(account=owner, kind="address", value="ann@example.org")
    BlocklistEntryFactory(account=None, kind="domain", value="spam.test")
    # Another account's entry blocks nobody here.
    BlocklistEntryFactory(account=stranger, kind="address", value="carl@example.net")
    url = reverse("lists:detail", args=[mailing_list.uuid])
    owner_client.get(url)  # warm up session and caches
    with CaptureQueriesContext(connection) as four:
        page = owner_client.get(url).content.decode()
    queries_for_four = len(four.captured_queries)

    rows = {row.split("</td>")[1]: row for row in page.split("<tr>")[2:]}
    blocked = {email for email in ("ann", "bob", "carl", "dora") if any(
        f">{email}@" in key and 'class="badge danger blocked"' in row for key, row in rows.items()
    )}  # fmt: skip
    assert blocked == {"ann", "bob"}
    SubscriptionFactory(mailing_list=mailing_list, subscriber__account=owner)
    with django_assert_num_queries(queries_for_four):
        owner_client.get(url)


@pytest.fixture
def searchable(owner):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    for email, name in [
        ("joann.smith@gmail.com", "Joann Smith"),
        ("bob@example.org", "Bob Johansson"),
        ("ann@xn--bcher-kva.example", "Ann"),  # stored as normalised: IDNA
        ("zed@example.net", "Zed Annex"),
    ]:
        SubscriptionFactory(
            mailing_list=mailing_list,
            subscriber=SubscriberFactory(
                account=owner, email=email, name=name, domain=email.split("@")[1].lower()
            ),
        )
    return mailing_list


def search(client, mailing_list, q: str) -> set[str]:  # noqa: ANN001
    flt = {"q": q}
    from lists import filters

    rows = filters.filter_subscriptions(mailing_list, flt).values_list(
        "subscriber__email", flat=True
    )
    page = client.get(reverse("lists:detail", args=[mailing_list.uuid]), flt).content.decode()
    found = set(rows)
    assert all(email in page for email in found)
    return found


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("gmail", {"joann.smith@gmail.com"}),
        ("SMITH", {"joann.smith@gmail.com"}),
        ("johans", {"bob@example.org"}),
        ("ann", {"joann.smith@gmail.com", "ann@xn--bcher-kva.example", "zed@example.net"}),
        # One or two characters match the start only.
        ("an", {"ann@xn--bcher-kva.example"}),
        ("@EXAMPLE.org", {"bob@example.org"}),
        ("@Bücher.example", {"ann@xn--bcher-kva.example"}),
        ("@example", set()),  # a whole domain, not a part of one
        ("@not a domain", set()),
    ],
)
def test_search_finds_text_anywhere_in_address_or_name_and_by_domain(
    owner_client, searchable, q: str, expected: set[str]
) -> None:  # noqa: ANN001
    assert search(owner_client, searchable, q) == expected


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("column", "index"), [("email", "subscriber_email_trgm"), ("name", "subscriber_name_trgm")]
)
def test_substring_search_can_use_the_trigram_indexes(column: str, index: str) -> None:
    # The expression filters._search builds; only a trigram index can serve '%...%'.
    from django.db import connection
    from django.db.models.functions import Lower

    queryset = Subscriber.objects.alias(key=Lower(column)).filter(key__contains="smith")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan
