"""Bulk actions: each action inline on a selection, and through a real worker on a
whole filter result, with the list counts right afterwards."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from lists import bulk, subscriptions
from lists.models import (
    BlocklistEntry,
    BulkJob,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionChange,
)
from tests.factories import MailingListFactory, SubscriberFactory, SubscriptionFactory


@pytest.fixture
def lists_with_people(owner):  # noqa: ANN001, ANN201
    """A source list of 12 (8 confirmed, 4 pending), and another list of the owner's."""
    source = MailingListFactory(owner=owner, name="Source")
    other = MailingListFactory(owner=owner, name="Other")
    for i in range(12):
        person = SubscriberFactory(account=owner, email=f"p{i:02d}@example.org")
        SubscriptionFactory(
            mailing_list=source, subscriber=person, status="confirmed" if i < 8 else "pending"
        )
    subscriptions.recount([source.id, other.id])
    return source, other


def _ids(mailing_list: MailingList, status: str | None = None) -> list[int]:
    rows = Subscription.objects.filter(mailing_list=mailing_list)
    if status:
        rows = rows.filter(status=status)
    return list(rows.order_by("subscriber_id").values_list("subscriber_id", flat=True))


def _post(client, source, **data):  # noqa: ANN001, ANN003, ANN202
    return client.post(reverse("lists:bulk", args=[source.uuid]), data)


@pytest.mark.django_db
def test_unsubscribe_inline_records_history_and_counts(
    owner_client, owner, lists_with_people
) -> None:  # noqa: ANN001
    source, _ = lists_with_people
    chosen = _ids(source, "confirmed")[:3]
    response = _post(owner_client, source, action="unsubscribe", scope="selected", ids=chosen)
    assert response.status_code == 302
    assert set(_ids(source, "unsubscribed")) == set(chosen)
    changes = SubscriptionChange.objects.filter(subscription__mailing_list=source)
    assert set(changes.values_list("old_status", "new_status")) == {("confirmed", "unsubscribed")}
    assert changes.count() == 3
    assert set(changes.values_list("actor", flat=True)) == {owner.id}
    source.refresh_from_db()
    assert (source.confirmed_count, source.unsubscribed_count, source.pending_count) == (5, 3, 4)


@pytest.mark.django_db
def test_delete_inline_removes_subscribers_everywhere(owner_client, lists_with_people) -> None:  # noqa: ANN001
    source, other = lists_with_people
    chosen = _ids(source)[:2]
    bulk.apply("add_to_list", source, chosen, target=other)
    _post(owner_client, source, action="delete", scope="selected", ids=chosen)
    assert not Subscriber.objects.filter(id__in=chosen).exists()
    source.refresh_from_db()
    other.refresh_from_db()
    assert source.total_count == 10
    assert other.total_count == 0


@pytest.mark.django_db
def test_add_to_list_copies_wanted_statuses_and_skips_blocked(
    owner_client, owner, lists_with_people
) -> None:  # noqa: ANN001
    source, other = lists_with_people
    everyone = _ids(source)
    bulk.apply("unsubscribe", source, everyone[:1])
    BlocklistEntry.objects.create(account=owner, kind="address", value="p01@example.org")
    response = _post(
        owner_client,
        source,
        action="add_to_list",
        scope="selected",
        ids=everyone,
        target=str(other.uuid),
    )
    assert response.status_code == 302
    added = dict(
        Subscription.objects.filter(mailing_list=other).values_list("subscriber__email", "status")
    )
    assert "p00@example.org" not in added  # unsubscribed from the source
    assert "p01@example.org" not in added  # blocked
    assert added["p02@example.org"] == "confirmed"
    assert added["p11@example.org"] == "pending"
    other.refresh_from_db()
    assert (other.confirmed_count, other.pending_count) == (6, 4)


@pytest.mark.django_db
def test_remove_from_list_inline(owner_client, lists_with_people) -> None:  # noqa: ANN001
    source, other = lists_with_people
    everyone = _ids(source)
    bulk.apply("add_to_list", source, everyone, target=other)
    _post(
        owner_client,
        source,
        action="remove_from_list",
        scope="selected",
        ids=everyone[:5],
        target=str(other.uuid),
    )
    assert set(_ids(other)) == set(everyone[5:])
    other.refresh_from_db()
    assert other.total_count == 7
    source.refresh_from_db()
    assert source.total_count == 12


@pytest.mark.django_db
def test_blocklist_inline_adds_account_entries_once(owner_client, owner, lists_with_people) -> None:  # noqa: ANN001
    source, _ = lists_with_people
    chosen = _ids(source)[:3]
    for _ in range(2):
        _post(owner_client, source, action="blocklist", scope="selected", ids=chosen)
    entries = BlocklistEntry.objects.filter(account=owner)
    assert sorted(entries.values_list("value", flat=True)) == [
        "p00@example.org",
        "p01@example.org",
        "p02@example.org",
    ]


@pytest.mark.django_db
def test_add_to_list_needs_another_list(owner_client, lists_with_people) -> None:  # noqa: ANN001
    source, _ = lists_with_people
    response = _post(owner_client, source, action="add_to_list", scope="selected", ids=_ids(source))
    assert response.status_code == 302
    assert Subscription.objects.count() == 12
    with pytest.raises(bulk.BulkError):
        bulk.apply("add_to_list", source, _ids(source), target=source)


@pytest.mark.django_db
def test_a_target_list_of_another_account_is_404_even_if_managed(
    client,
    owner,
    delegate,
    lists_with_people,  # noqa: ANN001
) -> None:
    source, _ = lists_with_people
    source.roles.create(user=delegate, role="manager")
    foreign = MailingListFactory(owner=delegate)
    client.force_login(delegate)
    response = _post(
        client,
        source,
        action="add_to_list",
        scope="selected",
        ids=_ids(source),
        target=str(foreign.uuid),
    )
    assert response.status_code == 404
    assert not Subscription.objects.filter(mailing_list=foreign).exists()


@pytest.mark.django_db
def test_chunks_take_a_constant_number_of_queries(
    lists_with_people,
    django_assert_max_num_queries,  # noqa: ANN001
) -> None:
    source, other = lists_with_people
    with django_assert_max_num_queries(12):
        bulk.apply_chunk("unsubscribe", source, _ids(source))
    with django_assert_max_num_queries(12):
        bulk.apply_chunk("add_to_list", source, _ids(source), target=other)


@pytest.mark.django_db
def test_whole_filter_selection_makes_a_job_and_shows_progress(
    owner_client, lists_with_people
) -> None:  # noqa: ANN001
    source, _ = lists_with_people
    response = _post(owner_client, source, action="unsubscribe", scope="filter", status="pending")
    assert response.status_code == 302
    job = BulkJob.objects.get()
    assert job.filter == {"status": "pending"}
    assert job.subscriber_ids == []
    page = owner_client.get(reverse("lists:detail", args=[source.uuid])).content.decode()
    assert "Unsubscribe from this list" in page
    assert 'hx-trigger="every 2s"' in page


# --- Through a real worker ---------------------------------------------------------------


def _wait_for(job: BulkJob, timeout: float = 60) -> BulkJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (BulkJob.Status.DONE, BulkJob.Status.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job still {job.status} after {timeout}s")


ACTIONS = ["unsubscribe", "delete", "add_to_list", "remove_from_list", "blocklist"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_runs_on_a_whole_filter_through_a_worker(
    celery_worker_process,
    owner_client,
    owner,
    lists_with_people,
    action: str,  # noqa: ANN001
) -> None:
    source, other = lists_with_people
    bulk.apply("add_to_list", source, _ids(source), target=other)
    pending = _ids(source, "pending")
    confirmed = _ids(source, "confirmed")
    response = _post(
        owner_client,
        source,
        action=action,
        scope="filter",
        status="pending",
        target=str(other.uuid),
    )
    assert response.status_code == 302
    job = _wait_for(BulkJob.objects.get())
    assert job.status == BulkJob.Status.DONE, job.error
    assert (job.done, job.total) == (4, 4)
    source.refresh_from_db()
    other.refresh_from_db()
    if action == "unsubscribe":
        assert set(_ids(source, "unsubscribed")) == set(pending)
        assert (source.pending_count, source.unsubscribed_count) == (0, 4)
    elif action == "delete":
        assert not Subscriber.objects.filter(id__in=pending).exists()
        assert (source.total_count, other.total_count) == (8, 8)
    elif action == "add_to_list":
        assert set(_ids(other)) == set(pending + confirmed)
        assert other.total_count == 12
    elif action == "remove_from_list":
        assert set(_ids(other)) == set(confirmed)
        assert other.total_count == 8
    else:
        assert BlocklistEntry.objects.filter(account=owner).count() == 4
    # The untouched rows stay as they were.
    assert _ids(source, "confirmed") == confirmed
