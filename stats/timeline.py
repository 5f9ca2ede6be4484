"""A subscriber's timeline: their rows of the event log, newest first, in keyset pages.

Pages follow ``(occurred_at, id)`` downwards (``after=<cursor>`` is older, ``before=`` is
newer): no OFFSET and no COUNT, so the thousandth page costs what the first does.
A delegate sees only the events of the lists granted to them; the account's owner sees
every event of the subscriber.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Q, QuerySet

from campaigns.models import Campaign, Link
from lists.models import MailingList, Subscriber
from stats.models import TrackingEvent

PAGE_SIZE = 50


@dataclass
class TimelinePage:
    rows: list[TrackingEvent] = field(default_factory=list)
    previous_url: str = ""
    next_url: str = ""


def events_of(subscriber: Subscriber, granted_lists: QuerySet[MailingList] | None) -> QuerySet:
    """The subscriber's events; ``granted_lists`` (None for the owner) narrows a delegate."""
    events = TrackingEvent.objects.filter(
        subscriber_id=subscriber.id, account_id=subscriber.account_id
    )
    if granted_lists is not None:
        events = events.filter(mailing_list_id__in=granted_lists.values("id"))
    return events


def _cursor(event: TrackingEvent) -> str:
    return f"{int(event.occurred_at.timestamp() * 1_000_000)}.{event.id}"


def _parse(text: str | None) -> tuple[datetime.datetime, int] | None:
    micros, _, ident = (text or "").partition(".")
    if not (micros.isdigit() and ident.isdigit()):
        return None
    moment = datetime.datetime.fromtimestamp(int(micros) / 1_000_000, tz=datetime.UTC)
    return moment, int(ident)


def page(events: QuerySet, params: object, base_url: str, size: int = PAGE_SIZE) -> TimelinePage:
    """One page of ``events``: size + 1 rows in one query, newest first."""
    after = _parse(params.get("after"))  # type: ignore[attr-defined]
    before = None if after else _parse(params.get("before"))  # type: ignore[attr-defined]
    if after:
        at, ident = after
        events = events.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=ident))
    elif before:
        at, ident = before
        events = events.filter(Q(occurred_at__gt=at) | Q(occurred_at=at, id__gt=ident))
    ordering = ("occurred_at", "id") if before else ("-occurred_at", "-id")
    rows = list(events.order_by(*ordering)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if before:
        rows.reverse()
    result = TimelinePage(rows=rows)
    if rows and (more or before):
        result.next_url = f"{base_url}?{urlencode({'after': _cursor(rows[-1])})}"
    if rows and (after or (before and more)):
        result.previous_url = f"{base_url}?{urlencode({'before': _cursor(rows[0])})}"
    return result


def describe(rows: list[TrackingEvent], account_id: int) -> list[dict]:
    """The rows with the campaign name and the clicked URL (two queries for the page)."""
    campaign_ids = {row.campaign_id for row in rows if row.campaign_id}
    names = dict(
        Campaign.objects.filter(account_id=account_id, id__in=campaign_ids).values_list(
            "id", "name"
        )
    )
    wanted = Q()
    for row in rows:
        if row.link_index and row.campaign_id in names:
            wanted |= Q(campaign_id=row.campaign_id, index=row.link_index)
    urls = {}
    if wanted:
        urls = {
            (c, i): u
            for c, i, u in Link.objects.filter(wanted).values_list("campaign_id", "index", "url")
        }
    return [
        {
            "event": row,
            "campaign": names.get(row.campaign_id, ""),
            "url": urls.get((row.campaign_id, row.link_index), ""),
            "detail": _detail(row),
        }
        for row in rows
    ]


def _detail(row: TrackingEvent) -> str:
    details = row.details if isinstance(row.details, dict) else {}
    parts = [
        str(details[key]) for key in ("bounce_class", "reason", "user_agent") if details.get(key)
    ]
    if row.machine:
        parts.append("machine (privacy proxy or scanner)")
    return ", ".join(parts)
