"""Keyset pages of the subscriber table: every row exactly once, forwards and back."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from lists import filters
from lists.models import Subscription
from tests.factories import (
    CustomFieldFactory,
    MailingListFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

STATUSES = ["confirmed", "pending", "unsubscribed", "confirmed", "bounced"]


@pytest.fixture
def big_list(owner):  # noqa: ANN001, ANN201
    mailing_list = MailingListFactory(owner=owner)
    CustomFieldFactory(account=owner, key="plan", type="text")
    for i in range(131):
        subscriber = SubscriberFactory(
            account=owner,
            # Mixed case and out-of-id-order addresses, to exercise the email sort.
            email=f"{'Z' if i % 3 == 0 else 'a'}{(i * 7) % 131:03d}@example.org",
            name=f"Reader {i}",
            fields={"plan": "gold" if i % 2 else "free"},
        )
        SubscriptionFactory(
            mailing_list=mailing_list, subscriber=subscriber, status=STATUSES[i % 5]
        )
    return mailing_list


def _rows_on(page_html: str) -> list[str]:
    return re.findall(r'name="ids" value="(\d+)"', page_html)


def _walk(client, url: str, params: dict[str, str]) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """Follows next links to the end, then previous links back; returns both id orders."""
    forward, pages = [], []
    response = client.get(url, {**params, "size": "25"})
    while True:
        html = response.content.decode()
        pages.append(_rows_on(html))
        forward += pages[-1]
        match = re.search(r'href="([^"]+)" rel="next"', html)
        if not match:
            break
        response = client.get(match.group(1).replace("&amp;", "&"))
    backward = list(pages[-1])
    while True:
        match = re.search(r'href="([^"]+)" rel="prev"', response.content.decode())
        if not match:
            break
        response = client.get(match.group(1).replace("&amp;", "&"))
        backward = _rows_on(response.content.decode()) + backward
    return forward, backward


def _expected(mailing_list, params: dict[str, str]) -> list[str]:  # noqa: ANN001
    queryset = filters.filter_subscriptions(mailing_list, params)
    return [str(i) for i in queryset.values_list("subscriber_id", flat=True)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "oldest"},
        {"sort": "email"},
        {"status": "confirmed"},
        {"status": "confirmed", "sort": "email"},
        {"field": "plan", "value": "gold"},
        {"q": "a", "sort": "email"},
    ],
)
def test_every_row_appears_exactly_once_across_pages(owner_client, big_list, params) -> None:  # noqa: ANN001
    url = reverse("lists:detail", args=[big_list.uuid])
    forward, backward = _walk(owner_client, url, params)
    expected = _expected(big_list, params)
    assert len(expected) > 25  # more than one page, or the walk proves nothing
    assert forward == expected
    assert backward == expected


@pytest.mark.django_db
def test_email_sort_is_case_insensitive_a_to_z(big_list) -> None:  # noqa: ANN001
    rows = filters.filter_subscriptions(big_list, {"sort": "email"}).select_related("subscriber")
    emails = [row.subscriber.email.lower() for row in rows]
    assert emails == sorted(emails)


@pytest.mark.django_db
def test_search_matches_address_or_name_anywhere(owner, big_list) -> None:  # noqa: ANN001
    special = SubscriberFactory(account=owner, email="Jane.Doe@Example.org", name="Mary Major")
    SubscriptionFactory(mailing_list=big_list, subscriber=special)

    def found(q: str) -> set[str]:
        rows = filters.filter_subscriptions(big_list, {"q": q}).select_related("subscriber")
        return {row.subscriber.email for row in rows}

    assert found("jane.d") == {"Jane.Doe@Example.org"}
    assert found("MARY") == {"Jane.Doe@Example.org"}
    assert found("doe") == {"Jane.Doe@Example.org"}  # a substring search
    assert found("do") == set()  # under three characters: the start only
    assert len(found("reader 1")) == 1 + 10 + 31  # Reader 1, 10..19, 100..130


@pytest.mark.django_db
def test_status_and_field_filters_combine(big_list) -> None:  # noqa: ANN001
    rows = filters.filter_subscriptions(
        big_list, {"status": "confirmed", "field": "plan", "value": "gold"}
    ).select_related("subscriber")
    assert rows
    assert all(r.status == "confirmed" and r.subscriber.fields["plan"] == "gold" for r in rows)
    expected = Subscription.objects.filter(
        mailing_list=big_list, status="confirmed", subscriber__fields__plan="gold"
    ).count()
    assert len(rows) == expected


@pytest.mark.django_db
def test_a_typed_field_value_is_compared_by_type(owner, big_list) -> None:  # noqa: ANN001
    CustomFieldFactory(account=owner, key="age", type="number")
    person = SubscriberFactory(account=owner, fields={"age": 42})
    SubscriptionFactory(mailing_list=big_list, subscriber=person)
    rows = filters.filter_subscriptions(big_list, {"field": "age", "value": "42"})
    assert [r.subscriber_id for r in rows] == [person.id]
    flt = filters.parse_filter(big_list, {"field": "age", "value": "many"})
    assert flt.errors
    assert not filters.apply_filter(big_list, flt).exists()


@pytest.mark.django_db
def test_unknown_status_and_sort_are_ignored(big_list) -> None:  # noqa: ANN001
    flt = filters.parse_filter(big_list, {"status": "nonsense", "sort": "random()"})
    assert flt.status == ""
    assert flt.sort == "newest"
    assert flt.errors


@pytest.mark.django_db
def test_a_bad_cursor_shows_the_first_page(owner_client, big_list) -> None:  # noqa: ANN001
    url = reverse("lists:detail", args=[big_list.uuid])
    first = _rows_on(owner_client.get(url).content.decode())
    assert _rows_on(owner_client.get(url, {"after": "x';--"}).content.decode()) == first
    assert _rows_on(owner_client.get(url, {"sort": "email", "after": "12"}).content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize("size", ["25", "200"])
def test_list_page_query_count_does_not_grow_with_page_size(
    owner_client,
    big_list,
    django_assert_max_num_queries,
    size: str,  # noqa: ANN001
) -> None:
    url = reverse("lists:detail", args=[big_list.uuid])
    # Session, user, list, fields, the page's rows and subscribers, and the list's
    # recent import, bulk and export jobs: a constant, whatever the page size.
    with django_assert_max_num_queries(11):
        response = owner_client.get(url, {"size": size, "field": "plan", "value": "gold"})
    assert response.status_code == 200
