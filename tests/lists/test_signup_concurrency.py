"""Signups racing each other on PostgreSQL: nothing lost, nothing doubled, counts right."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.core import mail
from django.db import connection

from lists import subscriptions
from lists.models import MailingList, Subscriber, Subscription
from tests.factories import MailingListFactory, SignupFormFactory, SubscriberFactory
from tests.lists.test_signup_support import *  # noqa: F403
from tests.lists.test_signup_support import post_signup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def high_limits(settings) -> None:  # noqa: ANN001
    # The races are the point here, not the abuse controls.
    settings.SIGNUP_RATE_PER_IP = "100000/60"
    settings.SIGNUP_RATE_PER_FORM = "100000/60"
    settings.SIGNUP_RATE_PER_ADDRESS = "100000/60"
    settings.SIGNUP_DNS_CHECK = False


def run_together(calls: list[Callable[[], int]]) -> list[int]:
    """Runs the calls in threads released at the same moment; returns their results."""
    barrier = threading.Barrier(len(calls))
    results: list[int] = [0] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def counts(mailing_list: MailingList) -> tuple[int, int]:
    mailing_list.refresh_from_db()
    return mailing_list.pending_count, mailing_list.confirmed_count


@pytest.mark.parametrize("known", [False, True], ids=["new address", "known subscriber"])
def test_one_address_posted_at_once_many_times_is_subscribed_and_mailed_once(
    form, mailing_list, celery_eager, known
):
    if known:
        SubscriberFactory(account=form.account, email="racer@example.org")
    codes = run_together(
        [lambda n=n: post_signup(form, email="racer@example.org", ip=f"192.0.2.{n}").status_code
         for n in range(8)]
    )  # fmt: skip
    assert codes == [200] * 8
    assert Subscriber.objects.filter(email="racer@example.org").count() == 1
    (subscription,) = Subscription.objects.filter(subscriber__email="racer@example.org")
    assert subscription.status == "pending"
    assert len(mail.outbox) == 1
    assert counts(mailing_list) == (1, 0)


def test_counts_stay_right_under_concurrent_signups_to_shared_lists(owner, celery_eager):
    # Two forms share two lists, one of them confirming at once: every signup takes
    # both lists' rows, in the same order whatever the form's order.
    first = MailingListFactory(owner=owner, name="B first by id")
    second = MailingListFactory(owner=owner, name="A second by id", double_opt_in=False)
    forms = [SignupFormFactory(account=owner, lists=[first, second]) for _ in range(2)]

    def signups(thread: int) -> int:
        form = forms[thread % 2]
        return sum(
            post_signup(form, email=f"t{thread}n{n}@example.org").status_code == 200
            for n in range(6)
        )

    accepted = run_together([lambda t=t: signups(t) for t in range(6)])
    assert sum(accepted) == 36
    assert counts(first) == (36, 0)
    assert counts(second) == (0, 36)
    subscriptions.recount([first.id, second.id])
    assert counts(first) == (36, 0) and counts(second) == (0, 36)
    assert len(mail.outbox) == 36
