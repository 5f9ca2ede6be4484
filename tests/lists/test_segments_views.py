"""The segment pages: the row editor, the live count, the segment page, tenancy."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from lists.access import grant
from lists.models import Segment
from tests.factories import (
    CustomFieldFactory,
    MailingListFactory,
    SegmentFactory,
    SubscriberFactory,
    SubscriptionFactory,
)


@pytest.fixture
def news(owner):  # noqa: ANN001, ANN201
    CustomFieldFactory(account=owner, key="city", label="City", type="text")
    news = MailingListFactory(owner=owner, name="News")
    for email, city in [("ann@example.org", "Berlin"), ("bob@example.org", "Paris")]:
        SubscriptionFactory(
            mailing_list=news,
            subscriber=SubscriberFactory(account=owner, email=email, fields={"city": city}),
        )
    SubscriberFactory(account=owner, email="cat@example.org", fields={"city": "Berlin"})
    return news


def editor_post(rows: list[tuple[str, str, str]], **extra: str) -> dict[str, str]:
    data = {"name": "Berliners", "match": "all", "rows": str(len(rows)), **extra}
    for index, (what, op, value) in enumerate(rows):
        data |= {f"c-{index}-what": what, f"c-{index}-op": op, f"c-{index}-value": value}
    return data


def test_owner_saves_a_segment_from_rows(owner_client, owner, news) -> None:  # noqa: ANN001
    rows = [
        ("field:city", "equals", "Berlin"),
        (f"list:{news.uuid}", "status:confirmed", "ignored"),
        ("", "equals", ""),
    ]
    response = owner_client.post(reverse("lists:segment-create"), editor_post(rows))
    segment = Segment.objects.get(account=owner)
    assert response.status_code == 302
    assert response["Location"] == reverse("lists:segment-detail", args=[segment.uuid])
    assert segment.definition == {
        "match": "all",
        "conditions": [
            {"type": "field", "field": "city", "op": "equals", "value": "Berlin"},
            {"type": "list", "list": str(news.uuid), "status": "confirmed"},
        ],
    }
    page = owner_client.get(response["Location"]).content.decode()
    assert "<strong>1</strong> subscriber match" in page
    assert "ann@example.org" in page
    assert "cat@example.org" not in page


def test_add_and_remove_change_the_rows_without_saving(owner_client, owner, news) -> None:  # noqa: ANN001
    rows = [("field:city", "equals", "Berlin"), ("email", "contains", "ann")]
    added = owner_client.post(reverse("lists:segment-create"), editor_post(rows, add="1"))
    assert added.status_code == 200
    # The two filled rows are kept and one blank row is offered for the next condition.
    assert 'name="c-2-what"' in added.content.decode()
    assert 'name="c-3-what"' not in added.content.decode()
    removed = owner_client.post(reverse("lists:segment-create"), editor_post(rows, remove="0"))
    body = removed.content.decode()
    assert 'value="ann"' in body
    assert 'value="Berlin"' not in body
    assert not Segment.objects.exists()


def test_an_invalid_segment_is_not_saved_and_says_why(owner_client, stranger, news) -> None:  # noqa: ANN001
    foreign = MailingListFactory(owner=stranger)
    rows = [(f"list:{foreign.uuid}", "status:any", ""), ("field:city", "gt", "3")]
    response = owner_client.post(reverse("lists:segment-create"), editor_post(rows))
    body = response.content.decode()
    assert response.status_code == 200
    assert f"condition 1: unknown list &#x27;{foreign.uuid}&#x27;" in body
    assert "condition 2: City (text) cannot use &#x27;gt&#x27;" in body
    assert not Segment.objects.exists()


def test_editing_keeps_conditions_the_rows_cannot_show(owner_client, owner, news) -> None:  # noqa: ANN001
    group = {
        "type": "group",
        "match": "any",
        "conditions": [{"type": "email", "op": "contains", "value": "bob"}],
    }
    segment = SegmentFactory(
        account=owner,
        definition={
            "match": "all",
            "conditions": [{"type": "name", "op": "contains", "value": "x"}, group],
        },
    )
    page = owner_client.get(reverse("lists:segment-edit", args=[segment.uuid])).content.decode()
    assert 'name="extra"' in page
    rows = [(f"list:{news.uuid}", "status:any", "")]
    data = editor_post(rows, extra=json.dumps([group]), name="Bobs")
    response = owner_client.post(reverse("lists:segment-edit", args=[segment.uuid]), data)
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Bobs"
    assert segment.definition["conditions"] == [
        {"type": "list", "list": str(news.uuid), "status": "any"},
        group,
    ]


def test_the_count_endpoint_counts_the_posted_rows(owner_client, owner, stranger, news) -> None:  # noqa: ANN001
    SubscriberFactory(account=stranger, email="eve@example.org", fields={"city": "Berlin"})
    url = reverse("lists:segment-count")
    berlin = owner_client.post(url, editor_post([("field:city", "equals", "berlin")]))
    assert "<strong>2</strong> subscribers match" in berlin.content.decode()
    on_news = owner_client.post(
        url,
        editor_post([("field:city", "equals", "berlin"), (f"list:{news.uuid}", "status:any", "")]),
    )
    assert "<strong>1</strong> subscriber match" in on_news.content.decode()
    bad = owner_client.post(url, editor_post([("field:nope", "equals", "x")]))
    assert "unknown field &#x27;nope&#x27;" in bad.content.decode()


def test_a_segment_with_a_deleted_list_shows_the_problem(owner_client, owner, news) -> None:  # noqa: ANN001
    segment = SegmentFactory(
        account=owner,
        definition={"match": "all", "conditions": [{"type": "list", "list": str(news.uuid)}]},
    )
    news.delete()
    response = owner_client.get(reverse("lists:segment-detail", args=[segment.uuid]))
    assert response.status_code == 200
    assert "no longer works" in response.content.decode()
    export = owner_client.get(reverse("lists:segment-export", args=[segment.uuid]))
    assert export.status_code == 302


def test_owner_deletes_a_segment(owner_client, owner) -> None:  # noqa: ANN001
    segment = SegmentFactory(account=owner)
    response = owner_client.post(reverse("lists:segment-delete", args=[segment.uuid]))
    assert response.status_code == 302
    assert not Segment.objects.exists()


def test_index_shows_only_the_accounts_segments(owner_client, owner, stranger) -> None:  # noqa: ANN001
    SegmentFactory(account=owner, name="Mine")
    SegmentFactory(account=stranger, name="Theirs")
    body = owner_client.get(reverse("lists:segment-index")).content.decode()
    assert "Mine" in body
    assert "Theirs" not in body


@pytest.mark.parametrize(
    "name",
    ["lists:segment-detail", "lists:segment-edit", "lists:segment-delete", "lists:segment-export"],
)
def test_stranger_gets_404(client, owner, stranger, delegate, news, name: str) -> None:  # noqa: ANN001
    # The delegate manages the owner's list, yet the owner's segments stay the owner's.
    grant(news, delegate, "manager", granted_by=owner)
    segment = SegmentFactory(account=owner, name="Kept")
    url = reverse(name, args=[segment.uuid])
    client.force_login(owner)
    assert client.get(url).status_code == 200
    for user in (stranger, delegate):
        client.force_login(user)
        assert client.get(url).status_code == 404
        if name != "lists:segment-export":
            assert client.post(url, editor_post([], name="Hijacked")).status_code == 404
    segment.refresh_from_db()
    assert segment.name == "Kept"


def test_a_stranger_cannot_count_with_the_owners_list(client, stranger, news) -> None:  # noqa: ANN001
    client.force_login(stranger)
    response = client.post(
        reverse("lists:segment-count"), editor_post([(f"list:{news.uuid}", "status:any", "")])
    )
    assert "unknown list" in response.content.decode()
    assert "<strong>" not in response.content.decode()
