"""What the statistics pages show, read from the rollups.

Every function takes objects the caller already fetched through an access helper (a
campaign the user owns, a list they may see); nothing here decides access. The
campaign's key numbers, hourly chart, links and domains come from the rollup tables
only, with a fixed number of queries whatever the campaign's size: counting the event
log or the deliveries per view would take seconds at a million recipients.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import QuerySet, Sum
from django.utils import timezone

from campaigns.models import Campaign, Link
from lists.models import MailingList
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    LinkStats,
    ListDailyStats,
    TrackingEvent,
)

FIRST_HOURS = 48
TOP_DOMAINS = 20
RECENT_CAMPAIGNS = 10


@dataclass(frozen=True)
class KeyNumbers:
    stats: CampaignStats

    @property
    def bounces(self) -> int:
        s = self.stats
        return s.hard_bounces + s.soft_bounces + s.sender_side_bounces

    @property
    def open_rate(self) -> float:
        """Unique human opens per message sent: machine opens (privacy proxies) excluded."""
        return self.stats.rate(self.stats.unique_human_opens)

    @property
    def machine_open_rate(self) -> float:
        return self.stats.rate(self.stats.unique_machine_opens)

    @property
    def click_rate(self) -> float:
        return self.stats.rate(self.stats.unique_human_clicks)

    @property
    def click_to_open_rate(self) -> float:
        opens = self.stats.unique_human_opens
        return self.stats.unique_human_clicks / opens if opens else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.stats.rate(self.bounces)

    @property
    def unsubscribe_rate(self) -> float:
        return self.stats.rate(self.stats.unsubscribes)

    @property
    def complaint_rate(self) -> float:
        return self.stats.rate(self.stats.complaints)

    def rows(self) -> list[tuple[str, int, float | None]]:
        """(label, count, rate or None): the key numbers table and its CSV."""
        s = self.stats
        return [
            ("Recipients", s.recipients, None),
            ("Sent", s.sent, None),
            ("Failed at the relay", s.failed, s.rate(s.failed)),
            ("Unknown (connection lost)", s.unknown, s.rate(s.unknown)),
            ("Unique opens (people)", s.unique_human_opens, self.open_rate),
            ("Opens (people, total)", s.total_human_opens, None),
            ("Unique opens (machines)", s.unique_machine_opens, self.machine_open_rate),
            ("Opens (machines, total)", s.total_machine_opens, None),
            ("Unique clicks (people)", s.unique_human_clicks, self.click_rate),
            ("Clicks (people, total)", s.total_human_clicks, None),
            ("Unique clicks (machines)", s.unique_machine_clicks, s.rate(s.unique_machine_clicks)),
            ("Hard bounces", s.hard_bounces, s.rate(s.hard_bounces)),
            ("Soft bounces", s.soft_bounces, s.rate(s.soft_bounces)),
            ("Refused the sender", s.sender_side_bounces, s.rate(s.sender_side_bounces)),
            ("Complaints", s.complaints, self.complaint_rate),
            ("Unsubscribes", s.unsubscribes, self.unsubscribe_rate),
        ]


def key_numbers(campaign: Campaign) -> KeyNumbers:
    """The campaign's rollup (zeros when nothing was recorded yet). One query."""
    stats = CampaignStats.objects.filter(campaign=campaign).first()
    return KeyNumbers(stats or CampaignStats(campaign=campaign))


def _hour_floor(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class HourlySeries:
    hours: list[datetime.datetime] = field(default_factory=list)
    rows: list[CampaignHourlyStats] = field(default_factory=list)


def first_hours(campaign: Campaign, hours: int = FIRST_HOURS) -> HourlySeries:
    """Opens and clicks per hour over the first ``hours`` after sending started, one row per
    hour (hours without activity as zeros). One query."""
    window = CampaignHourlyStats.objects.filter(campaign=campaign).order_by("hour")
    if campaign.started_at is not None:
        start = _hour_floor(campaign.started_at)
        window = window.filter(hour__gte=start, hour__lt=start + datetime.timedelta(hours=hours))
        found = {row.hour: row for row in window}
    else:
        found = {row.hour: row for row in window[:hours]}
        start = min(found, default=None)
    if start is None or not found:
        return HourlySeries()
    series = HourlySeries()
    for i in range(hours):
        hour = start + datetime.timedelta(hours=i)
        series.hours.append(hour)
        series.rows.append(found.get(hour) or CampaignHourlyStats(campaign=campaign, hour=hour))
    return series


@dataclass(frozen=True)
class LinkRow:
    index: int
    url: str
    unique_human_clicks: int
    total_human_clicks: int
    total_machine_clicks: int
    share: float  # of all human clicks of the campaign


def link_rows(campaign: Campaign) -> list[LinkRow]:
    """Every tracked link in document order with its clicks. Two queries."""
    urls = dict(Link.objects.filter(campaign=campaign).values_list("index", "url"))
    counts = {ls.link_index: ls for ls in LinkStats.objects.filter(campaign=campaign)}
    total = sum(ls.total_human_clicks for ls in counts.values())
    rows = []
    for index in sorted(set(urls) | set(counts)):
        ls = counts.get(index) or LinkStats(campaign=campaign, link_index=index)
        rows.append(
            LinkRow(
                index=index,
                url=urls.get(index, ""),
                unique_human_clicks=ls.unique_human_clicks,
                total_human_clicks=ls.total_human_clicks,
                total_machine_clicks=ls.total_machine_clicks,
                share=ls.total_human_clicks / total if total else 0.0,
            )
        )
    return rows


@dataclass(frozen=True)
class DomainRow:
    domain: str
    sent: int
    failed: int
    bounced: int
    unique_human_opens: int

    @property
    def delivery_rate(self) -> float:
        attempted = self.sent + self.failed
        return (self.sent - self.bounced) / attempted if attempted else 0.0

    @property
    def open_rate(self) -> float:
        return self.unique_human_opens / self.sent if self.sent else 0.0


def domain_rows(campaign: Campaign, limit: int | None = TOP_DOMAINS) -> list[DomainRow]:
    """The receiving domains with the most messages sent (all of them when limit is None)."""
    rows = CampaignDomainStats.objects.filter(campaign=campaign).order_by("-sent", "domain")
    if limit is not None:
        rows = rows[:limit]
    return [
        DomainRow(r.domain, r.sent, r.failed, r.bounced, r.unique_human_opens)
        for r in rows.only("domain", "sent", "failed", "bounced", "unique_human_opens")
    ]


@dataclass(frozen=True)
class Unsubscribe:
    occurred_at: datetime.datetime
    subscriber_id: int | None
    reason: str


def unsubscribes(campaign: Campaign, limit: int = 200) -> list[Unsubscribe]:
    """The campaign's latest unsubscribes with the reason the subscriber gave (if any)."""
    events = TrackingEvent.objects.filter(
        account_id=campaign.account_id,
        campaign_id=campaign.id,
        kind=TrackingEvent.Kind.UNSUBSCRIBED,
    ).order_by("-occurred_at", "-id")[:limit]
    return [
        Unsubscribe(e.occurred_at, e.subscriber_id, str((e.details or {}).get("reason", "")))
        for e in events.only("occurred_at", "subscriber_id", "details")
    ]


def reason_counts(rows: list[Unsubscribe]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for row in rows:
        key = row.reason.strip() or "(no reason given)"
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


# --- Lists -------------------------------------------------------------------------------


def list_days(mailing_list: MailingList, days: int) -> list[ListDailyStats]:
    """One row per day for the last ``days`` days (missing days as zeros, the size carried
    forward from the day before). One query."""
    today = timezone.localdate()
    since = today - datetime.timedelta(days=days - 1)
    found = {
        row.day: row
        for row in ListDailyStats.objects.filter(mailing_list=mailing_list, day__gte=since)
    }
    rows, size = [], None
    for i in range(days):
        day = since + datetime.timedelta(days=i)
        row = found.get(day)
        if row is None:
            row = ListDailyStats(mailing_list=mailing_list, day=day, size=size or 0)
        size = row.size
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Growth:
    subscribed: int
    confirmed: int
    unsubscribed: int
    bounced: int
    complained: int

    @property
    def lost(self) -> int:
        return self.unsubscribed + self.bounced + self.complained

    @property
    def net(self) -> int:
        return self.confirmed - self.lost


def growth_of(rows: list[ListDailyStats]) -> Growth:
    return Growth(
        subscribed=sum(r.subscribed for r in rows),
        confirmed=sum(r.confirmed for r in rows),
        unsubscribed=sum(r.unsubscribed for r in rows),
        bounced=sum(r.bounced for r in rows),
        complained=sum(r.complained for r in rows),
    )


def list_campaigns(mailing_list: MailingList, limit: int = 20) -> QuerySet[Campaign]:
    """The owner's campaigns sent to the list, newest first, with their rollups."""
    return (
        Campaign.objects.owned_by(mailing_list.owner)
        .filter(lists=mailing_list, started_at__isnull=False)
        .select_related("stats")
        .order_by("-started_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class EngagementRow:
    campaign: Campaign
    numbers: KeyNumbers


def list_engagement(mailing_list: MailingList, limit: int = 20) -> list[EngagementRow]:
    """The list page's Engagement table: list_campaigns with each one's key numbers (zeros
    for a campaign with no rollup yet). One query."""
    return [
        EngagementRow(c, KeyNumbers(getattr(c, "stats", None) or CampaignStats(campaign=c)))
        for c in list_campaigns(mailing_list, limit)
    ]


# --- The account overview ---------------------------------------------------------------


def recent_campaigns(
    user: object, limit: int = RECENT_CAMPAIGNS
) -> list[tuple[Campaign, KeyNumbers]]:
    campaigns = (
        Campaign.objects.owned_by(user)
        .filter(started_at__isnull=False)
        .select_related("stats")
        .order_by("-started_at", "-id")[:limit]
    )
    return [
        (c, KeyNumbers(getattr(c, "stats", None) or CampaignStats(campaign=c))) for c in campaigns
    ]


@dataclass(frozen=True)
class ListGrowthRow:
    mailing_list: MailingList
    growth: Growth


def lists_growth(lists: QuerySet[MailingList], days: int) -> list[ListGrowthRow]:
    """Per visible list: what came and went over the last ``days`` days. Two queries."""
    since = timezone.localdate() - datetime.timedelta(days=days - 1)
    sums = (
        ListDailyStats.objects.filter(mailing_list__in=lists, day__gte=since)
        .values("mailing_list_id")
        .annotate(
            subscribed=Sum("subscribed"),
            confirmed=Sum("confirmed"),
            unsubscribed=Sum("unsubscribed"),
            bounced=Sum("bounced"),
            complained=Sum("complained"),
        )
    )
    by_list = {row.pop("mailing_list_id"): Growth(**row) for row in sums}
    empty = Growth(0, 0, 0, 0, 0)
    return [ListGrowthRow(ml, by_list.get(ml.id, empty)) for ml in lists]


def account_sizes(lists: QuerySet[MailingList], days: int) -> list[tuple[datetime.date, int]]:
    """The summed end-of-day size of the lists, per day (days without rows left out)."""
    since = timezone.localdate() - datetime.timedelta(days=days - 1)
    rows = (
        ListDailyStats.objects.filter(mailing_list__in=lists, day__gte=since)
        .values("day")
        .annotate(size=Sum("size"))
        .order_by("day")
    )
    return [(row["day"], row["size"]) for row in rows]
