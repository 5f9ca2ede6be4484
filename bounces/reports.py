"""What owners read about bounces: counts by class and by reason, and the events themselves.

Every function takes a queryset already narrowed to what the user may see (a campaign they
own, a list they were granted); nothing here decides access.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Count, QuerySet

from bounces.models import BounceClass, BounceEvent
from campaigns.models import Campaign
from lists.models import MailingList


@dataclass
class Summary:
    total: int
    by_class: list[tuple[str, str, int]]  # (class, label, count), largest first
    by_reason: list[tuple[str, str, int]]  # (class label, code, count), largest first


def for_campaign(campaign: Campaign) -> QuerySet[BounceEvent]:
    return BounceEvent.objects.filter(campaign=campaign, account_id=campaign.account_id)


def for_list(mailing_list: MailingList) -> QuerySet[BounceEvent]:
    """Events about subscribers of the list (whichever campaign, or none, they came from)."""
    return BounceEvent.objects.filter(
        account_id=mailing_list.owner_id,
        subscriber__subscriptions__mailing_list=mailing_list,
    )


def summarise(events: QuerySet[BounceEvent]) -> Summary:
    labels = dict(BounceClass.choices)
    classes = events.values("bounce_class").annotate(n=Count("id")).order_by("-n", "bounce_class")
    by_class = [(r["bounce_class"], labels.get(r["bounce_class"], r["bounce_class"]), r["n"])
                for r in classes]  # fmt: skip
    reasons = (
        events.values("bounce_class", "status_code", "reply_code")
        .annotate(n=Count("id"))
        .order_by("-n", "bounce_class", "status_code")[:30]
    )
    by_reason = [
        (
            labels.get(r["bounce_class"], r["bounce_class"]),
            r["status_code"] or r["reply_code"] or "no code",
            r["n"],
        )
        for r in reasons
    ]
    return Summary(total=sum(n for _, _, n in by_class), by_class=by_class, by_reason=by_reason)


def listing(events: QuerySet[BounceEvent], bounce_class: str = "") -> QuerySet[BounceEvent]:
    """The events newest first, optionally of one class, with what the table shows."""
    if bounce_class in BounceClass.values:
        events = events.filter(bounce_class=bounce_class)
    return events.select_related("subscriber", "campaign").order_by("-received_at", "-id")


# --- The same tables as CSV rows, a header first (the caller streams them out) -----------


def class_rows(summary: Summary) -> Iterator[list[object]]:
    yield ["class", "label", "count"]
    for value, label, count in summary.by_class:
        yield [value, label, count]


def reason_rows(summary: Summary) -> Iterator[list[object]]:
    yield ["class", "code", "count"]
    for label, code, count in summary.by_reason:
        yield [label, code, count]


def listing_rows(
    events: QuerySet[BounceEvent],
    bounce_class: str,
    tz: datetime.tzinfo,
    *,
    with_campaign: bool,
) -> Iterator[list[object]]:
    """Every event of the listing (not one page of it), with its whole diagnostic; one
    query read in chunks, so a large listing streams in constant memory."""
    yield [
        "received_at", "address", "class", "status_code", "reply_code",
        *(["campaign"] if with_campaign else []), "diagnostic",
    ]  # fmt: skip
    rows = listing(events, bounce_class).values_list(
        "received_at", "recipient", "bounce_class", "status_code", "reply_code",
        "campaign__name", "diagnostic",
    )  # fmt: skip
    for received_at, recipient, klass, status, reply, campaign, diagnostic in rows.iterator(
        chunk_size=2000
    ):
        when = received_at.astimezone(tz).isoformat(timespec="seconds")
        campaign_cell = [campaign or ""] if with_campaign else []
        yield [when, recipient, klass, status, reply, *campaign_cell, diagnostic]


def for_subscriber(subscriber: object, limit: int = 50) -> list[BounceEvent]:
    return list(
        BounceEvent.objects.filter(subscriber=subscriber)
        .select_related("campaign")
        .order_by("-received_at", "-id")[:limit]
    )
