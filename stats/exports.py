"""CSV exports of every statistics table, streamed.

Each table is a generator of rows (a header first) built from the same domain functions
the pages use, so a CSV says exactly what the page shows. The text goes out through
``lists.exports.stream_csv``: every cell neutralised by ``mailpanel.lib.csvsafe`` (no cell
starts a spreadsheet formula: ``=``, ``+``, ``-``, ``@``, tab, CR), a UTF-8 byte order mark
first, 64 KB chunks. Times are ISO 8601 in the reader's time zone.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from bounces import reports as bounce_reports
from campaigns.models import Campaign
from lists import exports as list_exports
from lists.models import MailingList
from stats import dashboards, reports
from stats.models import FailureReport

Rows = Iterator[list[object]]
LIST_DAYS = 365


def _time(value: datetime.datetime | None, tz: datetime.tzinfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else ""


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def campaign_numbers(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield ["metric", "count", "rate"]
    for label, count, rate in dashboards.key_numbers(campaign).rows():
        yield [label, count, _rate(rate)]


def campaign_hourly(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield ["hour", "human_opens", "machine_opens", "human_clicks", "machine_clicks"]
    for row in dashboards.first_hours(campaign).rows:
        yield [_time(row.hour, tz), row.human_opens, row.machine_opens, row.human_clicks,
               row.machine_clicks]  # fmt: skip


def campaign_links(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield ["link", "url", "unique_human_clicks", "total_human_clicks", "total_machine_clicks"]
    for row in dashboards.link_rows(campaign):
        yield [row.index, row.url, row.unique_human_clicks, row.total_human_clicks,
               row.total_machine_clicks]  # fmt: skip


def campaign_domains(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield ["domain", "sent", "failed", "bounced", "unique_human_opens", "delivery_rate",
           "open_rate"]  # fmt: skip
    for row in dashboards.domain_rows(campaign, limit=None):
        yield [row.domain, row.sent, row.failed, row.bounced, row.unique_human_opens,
               _rate(row.delivery_rate), _rate(row.open_rate)]  # fmt: skip


def campaign_bounces(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    """Bounces by reason (class and status code)."""
    yield from bounce_reports.reason_rows(
        bounce_reports.summarise(bounce_reports.for_campaign(campaign))
    )


def campaign_bounce_classes(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield from bounce_reports.class_rows(
        bounce_reports.summarise(bounce_reports.for_campaign(campaign))
    )


def campaign_unsubscribes(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    yield ["unsubscribed_at", "reason"]
    for row in dashboards.unsubscribes(campaign, limit=100_000):
        yield [_time(row.occurred_at, tz), row.reason]


def campaign_unsubscribe_reasons(campaign: Campaign, tz: datetime.tzinfo) -> Rows:
    """The reasons table of the page: over the same latest unsubscribes it counts."""
    yield ["reason", "people"]
    yield from (list(row) for row in dashboards.reason_counts(dashboards.unsubscribes(campaign)))


CAMPAIGN_TABLES: dict[str, Callable[[Campaign, datetime.tzinfo], Rows]] = {
    "numbers": campaign_numbers,
    "hourly": campaign_hourly,
    "links": campaign_links,
    "domains": campaign_domains,
    "bounces": campaign_bounces,
    "bounce-classes": campaign_bounce_classes,
    "unsubscribes": campaign_unsubscribes,
    "unsubscribe-reasons": campaign_unsubscribe_reasons,
}


def list_daily(mailing_list: MailingList, tz: datetime.tzinfo) -> Rows:
    yield ["day", "subscribed", "confirmed", "unsubscribed", "bounced", "complained", "size"]
    for row in dashboards.list_days(mailing_list, LIST_DAYS):
        yield [row.day.isoformat(), row.subscribed, row.confirmed, row.unsubscribed, row.bounced,
               row.complained, row.size]  # fmt: skip


def list_engagement(mailing_list: MailingList, tz: datetime.tzinfo) -> Rows:
    """The list page's Engagement table: its owner's campaigns sent to it, newest first."""
    yield ["campaign", "started_at", "sent", "unique_human_opens", "open_rate",
           "unique_human_clicks", "click_rate", "unsubscribes"]  # fmt: skip
    for row in dashboards.list_engagement(mailing_list):
        n = row.numbers
        yield [row.campaign.name, _time(row.campaign.started_at, tz), n.stats.sent,
               n.stats.unique_human_opens, _rate(n.open_rate), n.stats.unique_human_clicks,
               _rate(n.click_rate), n.stats.unsubscribes]  # fmt: skip


def overview_campaigns(user: object, tz: datetime.tzinfo) -> Rows:
    yield ["campaign", "started_at", "sent", "open_rate", "click_rate", "bounces", "unsubscribes"]
    for campaign, numbers in dashboards.recent_campaigns(user, limit=1000):
        yield [campaign.name, _time(campaign.started_at, tz), numbers.stats.sent,
               _rate(numbers.open_rate), _rate(numbers.click_rate), numbers.bounces,
               numbers.stats.unsubscribes]  # fmt: skip


def overview_lists(lists: QuerySet[MailingList], days: int) -> Rows:
    yield ["list", "confirmed_now", "subscribed", "confirmed", "unsubscribed", "bounced",
           "complained"]  # fmt: skip
    for row in dashboards.lists_growth(lists, days):
        g = row.growth
        yield [row.mailing_list.name, row.mailing_list.confirmed_count, g.subscribed, g.confirmed,
               g.unsubscribed, g.bounced, g.complained]  # fmt: skip


def subscriber_timeline(events: QuerySet, tz: datetime.tzinfo) -> Rows:
    yield ["occurred_at", "kind", "campaign_id", "link", "machine", "recipient_domain"]
    rows = events.order_by("-occurred_at", "-id").values_list(
        "occurred_at", "kind", "campaign_id", "link_index", "machine", "recipient_domain"
    )
    for occurred_at, kind, campaign_id, link, machine, domain in rows.iterator(chunk_size=2000):
        yield [_time(occurred_at, tz), kind, campaign_id or "", link or "",
               "yes" if machine else "no", domain]  # fmt: skip


def failure_table(report: FailureReport, dimension: str) -> Rows:
    yield [dimension.removesuffix("s"), "key", "failed", "bounced", "total"]
    for row in reports.rows(report, dimension):
        yield [row.label, "" if row.key is None else row.key, row.failed, row.bounced, row.total]


def response(rows: Rows, name: str) -> StreamingHttpResponse:
    """The rows as a streamed CSV download called ``<name>-<date>.csv``."""
    streamed = StreamingHttpResponse(
        list_exports.stream_csv(rows), content_type="text/csv; charset=utf-8"
    )
    filename = list_exports.filename(name, timezone.localdate())
    streamed["Content-Disposition"] = content_disposition_header(True, filename)
    streamed["Cache-Control"] = "no-store"
    return streamed
