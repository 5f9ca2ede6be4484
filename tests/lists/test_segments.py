"""Segment compilation against a small hand-checked population (runs on SQLite and Postgres)."""

from __future__ import annotations

import datetime

import pytest

from lists import segments
from tests.factories import (
    CustomFieldFactory,
    MailingListFactory,
    SegmentFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

UTC = datetime.UTC


@pytest.fixture
def world(owner, stranger):  # noqa: ANN001, ANN201
    CustomFieldFactory(account=owner, key="city", type="text")
    CustomFieldFactory(account=owner, key="age", type="number")
    CustomFieldFactory(account=owner, key="birthday", type="date")
    CustomFieldFactory(account=owner, key="vip", type="boolean")
    CustomFieldFactory(account=owner, key="plan", type="choice", choices=["free", "pro"])
    news = MailingListFactory(owner=owner, name="News")
    offers = MailingListFactory(owner=owner, name="Offers")
    foreign = MailingListFactory(owner=stranger, name="Foreign")
    people = {
        "ann": SubscriberFactory(
            account=owner,
            email="ann@example.org",
            name="Ann Archer",
            fields={
                "city": "Berlin",
                "age": 30,
                "birthday": "1990-05-01",
                "vip": True,
                "plan": "pro",
            },
        ),
        "bob": SubscriberFactory(
            account=owner,
            email="bob@test.net",
            name="Bob Baker",
            fields={"city": "Paris", "age": 45.5, "birthday": "1980-12-24", "vip": False},
        ),
        # A value of the wrong type under "age" (left from before a type change).
        "cat": SubscriberFactory(
            account=owner,
            email="cat@example.org",
            name="Cat",
            fields={"city": "berlin", "age": "old"},
        ),
        "dan": SubscriberFactory(account=owner, email="dan@example.com", name="", fields={}),
    }
    eve = SubscriberFactory(
        account=stranger, email="eve@example.org", name="Eve", fields={"city": "Berlin", "age": 50}
    )
    SubscriptionFactory(mailing_list=foreign, subscriber=eve)

    def subscribe(person: str, mailing_list, status: str, day: datetime.date):  # noqa: ANN001, ANN202
        sub = SubscriptionFactory(
            mailing_list=mailing_list, subscriber=people[person], status=status
        )
        when = datetime.datetime.combine(day, datetime.time(12), tzinfo=UTC)
        type(sub).objects.filter(pk=sub.pk).update(created_at=when)

    subscribe("ann", news, "confirmed", datetime.date(2024, 1, 10))
    subscribe("ann", offers, "unsubscribed", datetime.date(2024, 1, 11))
    subscribe("bob", news, "pending", datetime.date(2024, 3, 1))
    subscribe("cat", offers, "confirmed", datetime.date(2024, 2, 15))
    return {"owner": owner, "news": news, "offers": offers, "foreign": foreign, **people}


def names(world: dict, definition: dict) -> set[str]:
    segment = SegmentFactory(account=world["owner"], definition=definition)
    return {s.email.partition("@")[0] for s in segments.subscribers_in(segment)}


def one(condition: dict) -> dict:
    return {"match": "all", "conditions": [condition]}


def field(key: str, op: str, value: object = None) -> dict:
    return {"type": "field", "field": key, "op": op, "value": value}


CASES = [
    # text
    (field("city", "equals", "berlin"), {"ann", "cat"}),
    (field("city", "not_equals", "Berlin"), {"bob", "dan"}),
    (field("city", "contains", "AR"), {"bob"}),
    (field("city", "is_set"), {"ann", "bob", "cat"}),
    (field("city", "is_not_set"), {"dan"}),
    # number: the stale string "old" never compares as a number
    (field("age", "gt", "40"), {"bob"}),
    (field("age", "lt", 40), {"ann"}),
    (field("age", "equals", "30"), {"ann"}),
    (field("age", "equals", "45.5"), {"bob"}),
    (field("age", "not_equals", 30), {"bob", "cat", "dan"}),
    # date
    (field("birthday", "before", "1985-01-01"), {"bob"}),
    (field("birthday", "after", "1985-01-01"), {"ann"}),
    (field("birthday", "equals", "1990-05-01"), {"ann"}),
    (field("birthday", "is_not_set"), {"cat", "dan"}),
    # boolean
    (field("vip", "equals", "yes"), {"ann"}),
    (field("vip", "equals", False), {"bob"}),
    (field("vip", "is_set"), {"ann", "bob"}),
    (field("vip", "is_not_set"), {"cat", "dan"}),
    # choice
    (field("plan", "equals", "PRO"), {"ann"}),
    (field("plan", "not_equals", "pro"), {"bob", "cat", "dan"}),
    # e-mail and name
    ({"type": "email", "op": "equals", "value": "ANN@example.org"}, {"ann"}),
    ({"type": "email", "op": "contains", "value": "example"}, {"ann", "cat", "dan"}),
    ({"type": "email", "op": "domain", "value": "@Example.ORG"}, {"ann", "cat"}),
    ({"type": "name", "op": "contains", "value": "ba"}, {"bob"}),
    ({"type": "name", "op": "equals", "value": "cat"}, {"cat"}),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[str(c) for c, _ in CASES])
def test_each_condition_matches_the_hand_checked_subscribers(world, condition, expected) -> None:  # noqa: ANN001
    assert names(world, one(condition)) == expected


def test_list_membership_and_status(world) -> None:  # noqa: ANN001
    news, offers = str(world["news"].uuid), str(world["offers"].uuid)
    assert names(world, one({"type": "list", "list": news, "status": "any"})) == {"ann", "bob"}
    assert names(world, one({"type": "list", "list": news, "status": "confirmed"})) == {"ann"}
    assert names(world, one({"type": "list", "list": offers, "status": "unsubscribed"})) == {"ann"}
    assert names(world, one({"type": "not_list", "list": news, "status": "any"})) == {"cat", "dan"}
    assert names(world, one({"type": "not_list", "list": news, "status": "confirmed"})) == {
        "bob",
        "cat",
        "dan",
    }


def test_subscribed_before_and_after_a_day(world) -> None:  # noqa: ANN001
    offers = str(world["offers"].uuid)
    before = {"type": "subscribed", "op": "before", "value": "2024-02-01"}
    assert names(world, one(before)) == {"ann"}
    assert names(world, one({"type": "subscribed", "op": "after", "value": "2024-02-20"})) == {
        "bob"
    }
    # The day itself is neither before nor after it.
    assert names(world, one({"type": "subscribed", "op": "after", "value": "2024-03-01"})) == set()
    on_offers = {"type": "subscribed", "op": "after", "value": "2024-01-31", "list": offers}
    assert names(world, one(on_offers)) == {"cat"}


def test_all_needs_every_condition_and_any_needs_one(world) -> None:  # noqa: ANN001
    conditions = [
        field("city", "equals", "Berlin"),
        {"type": "list", "list": str(world["news"].uuid), "status": "any"},
    ]
    assert names(world, {"match": "all", "conditions": conditions}) == {"ann"}
    assert names(world, {"match": "any", "conditions": conditions}) == {"ann", "bob", "cat"}


def test_nested_groups_combine_list_conditions(world) -> None:  # noqa: ANN001
    news = str(world["news"].uuid)
    on_news_and_vip_or_older = {
        "match": "all",
        "conditions": [
            {"type": "list", "list": news, "status": "any"},
            {"type": "group", "match": "any", "conditions": [
                field("vip", "equals", True),
                field("age", "gt", 40),
            ]},
        ],
    }  # fmt: skip
    assert names(world, on_news_and_vip_or_older) == {"ann", "bob"}
    off_news = {
        "match": "all",
        "conditions": [
            {"type": "not_list", "list": news, "status": "any"},
            {"type": "group", "match": "any", "conditions": [
                {"type": "email", "op": "domain", "value": "example.com"},
                field("city", "contains", "erl"),
            ]},
        ],
    }  # fmt: skip
    assert names(world, off_news) == {"cat", "dan"}


def test_an_empty_definition_matches_the_whole_account(world) -> None:  # noqa: ANN001
    assert names(world, {"match": "any", "conditions": []}) == {"ann", "bob", "cat", "dan"}


def test_validate_names_each_problem(world) -> None:  # noqa: ANN001
    owner = world["owner"]
    definition = {
        "match": "some",
        "conditions": [
            field("colour", "equals", "red"),
            field("city", "gt", "3"),
            field("age", "equals", "abc"),
            field("birthday", "before", "yesterday"),
            {"type": "list", "list": str(world["foreign"].uuid), "status": "any"},
            {"type": "list", "list": str(world["news"].uuid), "status": "happy"},
            {"type": "subscribed", "op": "after", "value": "2024-13-01"},
            {"type": "telepathy"},
        ],
    }
    errors = segments.validate(definition, owner)
    assert errors[0] == "match must be 'all' or 'any'"
    assert "condition 1: unknown field 'colour'" in errors
    assert any(e.startswith("condition 2: City (text) cannot use 'gt'") for e in errors)
    assert any(e.startswith("condition 3: Age: 'abc' is not a number") for e in errors)
    assert any(e.startswith("condition 4: Birthday: 'yesterday' is not a date") for e in errors)
    assert f"condition 5: unknown list '{world['foreign'].uuid}'" in errors
    assert any(e.startswith("condition 6: unknown status 'happy'") for e in errors)
    assert any(e.startswith("condition 7: subscribed: '2024-13-01' is not a date") for e in errors)
    assert "condition 8: unknown condition type 'telepathy'" in errors
    assert len(errors) == 9


def test_a_foreign_list_is_rejected_and_not_compiled(world) -> None:  # noqa: ANN001
    # The same condition on the owner's own list is valid: only ownership differs.
    own = one({"type": "list", "list": str(world["news"].uuid), "status": "any"})
    foreign = one({"type": "list", "list": str(world["foreign"].uuid), "status": "any"})
    assert segments.validate(own, world["owner"]) == []
    assert segments.validate(foreign, world["owner"]) != []
    with pytest.raises(segments.InvalidSegment):
        segments.compile(foreign, world["owner"])


def test_a_registered_condition_type_is_compiled(world) -> None:  # noqa: ANN001
    from django.db.models import Q

    segments.register(
        "has_name",
        label="Has a name",
        validate=lambda condition, context: [],
        compile=lambda condition, context: ~Q(name=""),
    )
    try:
        assert names(world, one({"type": "has_name"})) == {"ann", "bob", "cat"}
    finally:
        del segments.CONDITION_TYPES["has_name"]


def test_nothing_from_another_account_matches(world) -> None:  # noqa: ANN001
    assert "eve" not in names(world, one(field("city", "equals", "Berlin")))
    assert "eve" not in names(world, one(field("age", "gt", 0)))
