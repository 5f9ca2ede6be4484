"""The rollups the dashboards read, kept up to date in bulk and rebuilt from the log.

``count(events)`` runs for every written group of events: one upsert of the deliveries'
engagement (whose returned totals say which opens and clicks were a recipient's first),
one of the per-link engagement, then one ``INSERT ... ON CONFLICT DO UPDATE SET x = x +
excluded.x`` per rollup table. Rows are written in key order, so two writers (the drain
and a web process writing straight to the database while Redis is down) lock them in the
same order and never deadlock.

``rebuild_campaign`` recomputes a campaign's rollups from the raw log with aggregate
queries that share nothing with the incremental path: the tests prove they agree.
``roll_up_lists`` makes the per-list daily numbers from the lists app's own history.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection, models, transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from campaigns.models import Campaign
from stats.events import Event, Kind
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    DeliveryEngagement,
    LinkEngagement,
    LinkStats,
    ListDailyStats,
    TrackingEvent,
)

BOUNCE_COUNTERS = {
    "hard": "hard_bounces",
    "soft": "soft_bounces",
    "sender_side": "sender_side_bounces",
}
# Counters of CampaignStats / CampaignDomainStats moved by one event of a kind.
CAMPAIGN_COUNTERS = {
    Kind.SENT: "sent", Kind.FAILED: "failed", Kind.UNKNOWN: "unknown",
    Kind.COMPLAINED: "complaints", Kind.UNSUBSCRIBED: "unsubscribes",
}  # fmt: skip
CAMPAIGN_TABLE = Campaign._meta.db_table
DOMAIN_COUNTERS = {Kind.SENT: "sent", Kind.FAILED: "failed", Kind.BOUNCED: "bounced"}


@dataclass
class Deltas:
    """What a group of events adds to each rollup row, by the row's key."""

    campaign: dict[tuple, Counter] = field(default_factory=lambda: defaultdict(Counter))
    link: dict[tuple, Counter] = field(default_factory=lambda: defaultdict(Counter))
    hourly: dict[tuple, Counter] = field(default_factory=lambda: defaultdict(Counter))
    domain: dict[tuple, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, e: Event) -> None:
        if e.campaign_id is None:
            return
        key = (e.campaign_id,)
        if e.kind in CAMPAIGN_COUNTERS:
            self.campaign[key][CAMPAIGN_COUNTERS[e.kind]] += 1
        elif e.kind == Kind.BOUNCED:
            counter = BOUNCE_COUNTERS.get(e.details.get("bounce_class", ""))
            if counter:
                self.campaign[key][counter] += 1
        if e.kind in DOMAIN_COUNTERS and e.recipient_domain:
            self.domain[(e.campaign_id, e.recipient_domain)][DOMAIN_COUNTERS[e.kind]] += 1
        if e.kind in (Kind.OPENED, Kind.CLICKED):
            self._add_engagement(e)

    def _add_engagement(self, e: Event) -> None:
        who = "machine" if e.machine else "human"
        noun = "opens" if e.kind == Kind.OPENED else "clicks"
        self.campaign[(e.campaign_id,)][f"total_{who}_{noun}"] += 1
        hour = e.occurred_at.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        self.hourly[(e.campaign_id, hour)][f"{who}_{noun}"] += 1
        if e.kind == Kind.CLICKED and e.link_index is not None:
            self.link[(e.campaign_id, e.link_index)][f"total_{who}_clicks"] += 1

    def apply(self) -> None:
        _add(CampaignStats, ("campaign_id",), self.campaign)
        _add(LinkStats, ("campaign_id", "link_index"), self.link)
        _add(CampaignHourlyStats, ("campaign_id", "hour"), self.hourly)
        _add(CampaignDomainStats, ("campaign_id", "domain"), self.domain)


def _db(value: object) -> object:
    # Raw SQL must store datetimes as the ORM does (on SQLite: naive UTC text), or an
    # upsert keyed on an hour would not meet the row the ORM wrote for that hour.
    if isinstance(value, datetime.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def count(events: Sequence[Event]) -> None:
    """Adds written events to every rollup: a constant number of statements per call."""
    deltas = Deltas()
    for e in events:
        deltas.add(e)
    engaged = [e for e in events if e.kind in (Kind.OPENED, Kind.CLICKED) and e.delivery_id]
    if engaged:
        _count_firsts(engaged, deltas)
    deltas.apply()


def _counter_columns(model: type[models.Model], keys: tuple[str, ...]) -> list[str]:
    return [
        f.column
        for f in model._meta.concrete_fields
        if isinstance(f, models.PositiveIntegerField) and f.column not in keys
    ]


def _add(model: type[models.Model], keys: tuple[str, ...], deltas: dict[tuple, Counter]) -> None:
    """One upsert adding ``deltas`` to the rows of ``model`` keyed by ``keys``."""
    if not deltas:
        return
    table = model._meta.db_table
    counters = _counter_columns(model, keys)
    stamped = any(f.column == "updated_at" for f in model._meta.concrete_fields)
    columns = [*keys, *counters, *(["updated_at"] if stamped else [])]
    now = _db(timezone.now())
    params: list[object] = []
    for key in sorted(deltas):
        params.extend(_db(value) for value in key)
        params.extend(deltas[key].get(c, 0) for c in counters)
        if stamped:
            params.append(now)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in counters]
    if stamped:
        sets.append("updated_at = excluded.updated_at")
    # Only rows of campaigns that still exist: a deleted campaign's late event (an
    # unsubscribe link clicked weeks later) must not fail the caller's transaction on the
    # foreign key. VALUES columns are column1, column2... on PostgreSQL and SQLite alike.
    values = ", ".join([row] * len(deltas))
    alive = f"EXISTS (SELECT 1 FROM {CAMPAIGN_TABLE} c WHERE c.id = v.column1)"  # noqa: S608
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM (VALUES {values}) AS v "  # noqa: S608 (names, not input)
        f"WHERE {alive} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- Engagement: which opens and clicks were firsts ----------------------------------------

ENGAGEMENT_COLUMNS = (
    "first_human_open_at", "first_machine_open_at", "first_human_click_at",
    "first_machine_click_at", "human_opens", "machine_opens", "human_clicks", "machine_clicks",
)  # fmt: skip


def _engagement_rows(events: Iterable[Event]) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for e in events:
        row = rows.setdefault(
            e.delivery_id,
            {"campaign_id": e.campaign_id, "subscriber_id": e.subscriber_id, "domain": ""}
            | dict.fromkeys(ENGAGEMENT_COLUMNS[:4])
            | dict.fromkeys(ENGAGEMENT_COLUMNS[4:], 0),
        )
        who = "machine" if e.machine else "human"
        noun = "open" if e.kind == Kind.OPENED else "click"
        row[f"{who}_{noun}s"] += 1
        first = f"first_{who}_{noun}_at"
        if row[first] is None or e.occurred_at < row[first]:
            row[first] = e.occurred_at
        row["domain"] = row["domain"] or e.recipient_domain
    return rows


def _count_firsts(events: list[Event], deltas: Deltas) -> None:
    rows = _engagement_rows(events)
    for delivery_id, totals in _upsert_engagement(rows).items():
        row = rows[delivery_id]
        campaign = deltas.campaign[(row["campaign_id"],)]
        for who in ("human", "machine"):
            for noun in ("open", "click"):
                added = row[f"{who}_{noun}s"]
                # The total after the upsert equals what this group added: there was none
                # before, so this group holds the recipient's first. Exact under concurrency,
                # because the upsert locks the row and returns its committed total.
                if added and totals[f"{who}_{noun}s"] == added:
                    campaign[f"unique_{who}_{noun}s"] += 1
                    if who == "human" and noun == "open" and row["domain"]:
                        deltas.domain[(row["campaign_id"], row["domain"])][
                            "unique_human_opens"
                        ] += 1
    clicks = [e for e in events if e.kind == Kind.CLICKED and e.link_index is not None]
    if clicks:
        _count_link_firsts(clicks, deltas)


def _earliest(column: str, table: str) -> str:
    # Portable min() that ignores NULLs (SQLite's two-argument min returns NULL).
    return (
        f"CASE WHEN {table}.{column} IS NULL OR excluded.{column} < {table}.{column} "
        f"THEN excluded.{column} ELSE {table}.{column} END"
    )


def _upsert_engagement(rows: dict[int, dict]) -> dict[int, dict]:
    """Adds the rows to DeliveryEngagement; returns each delivery's totals afterwards."""
    table = DeliveryEngagement._meta.db_table
    columns = ("delivery_id", "campaign_id", "subscriber_id", *ENGAGEMENT_COLUMNS)
    params: list[object] = []
    for delivery_id in sorted(rows):
        row = rows[delivery_id]
        params.extend([delivery_id, row["campaign_id"], row["subscriber_id"]])
        params.extend(_db(row[c]) for c in ENGAGEMENT_COLUMNS)
    sets = [f"{c} = {_earliest(c, table)}" for c in ENGAGEMENT_COLUMNS[:4]]
    sets += [f"{c} = {table}.{c} + excluded.{c}" for c in ENGAGEMENT_COLUMNS[4:]]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608 (names, not input)
        + ", ".join([placeholders] * len(rows))
        + f" ON CONFLICT (delivery_id) DO UPDATE SET {', '.join(sets)} "
        "RETURNING delivery_id, human_opens, machine_opens, human_clicks, machine_clicks"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = ("human_opens", "machine_opens", "human_clicks", "machine_clicks")
        return {row[0]: dict(zip(names, row[1:], strict=True)) for row in cursor.fetchall()}


def _count_link_firsts(clicks: list[Event], deltas: Deltas) -> None:
    added: dict[tuple[int, int], list] = {}
    for e in clicks:
        entry = added.setdefault((e.delivery_id, e.link_index), [e.campaign_id, 0, 0])
        entry[2 if e.machine else 1] += 1
    table = LinkEngagement._meta.db_table
    params: list[object] = []
    for (delivery_id, index), (campaign_id, human, machine) in sorted(added.items()):
        params.extend([delivery_id, index, campaign_id, human, machine])
    sql = (
        f"INSERT INTO {table} (delivery_id, link_index, campaign_id, human_clicks, "  # noqa: S608
        "machine_clicks) VALUES " + ", ".join(["(%s, %s, %s, %s, %s)"] * len(added)) + " "
        "ON CONFLICT (delivery_id, link_index) DO UPDATE SET "
        f"human_clicks = {table}.human_clicks + excluded.human_clicks, "
        f"machine_clicks = {table}.machine_clicks + excluded.machine_clicks "
        "RETURNING delivery_id, link_index, human_clicks"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for delivery_id, index, human_total in cursor.fetchall():
            campaign_id, human, _machine = added[(delivery_id, index)]
            if human and human_total == human:
                deltas.link[(campaign_id, index)]["unique_human_clicks"] += 1


# --- Rebuilding a campaign from the raw log ------------------------------------------------


def _is(kind: str, **more: object) -> Q:
    return Q(kind=kind, **more)


def _campaign_totals(log: models.QuerySet) -> dict[str, int]:
    opened, clicked = Kind.OPENED, Kind.CLICKED
    human, machine = {"machine": False}, {"machine": True}
    aggregates = {
        "sent": Count("id", filter=_is(Kind.SENT)),
        "failed": Count("id", filter=_is(Kind.FAILED)),
        "unknown": Count("id", filter=_is(Kind.UNKNOWN)),
        "complaints": Count("id", filter=_is(Kind.COMPLAINED)),
        "unsubscribes": Count("id", filter=_is(Kind.UNSUBSCRIBED)),
        "total_human_opens": Count("id", filter=_is(opened, **human)),
        "total_machine_opens": Count("id", filter=_is(opened, **machine)),
        "total_human_clicks": Count("id", filter=_is(clicked, **human)),
        "total_machine_clicks": Count("id", filter=_is(clicked, **machine)),
        "unique_human_opens": Count("delivery_id", filter=_is(opened, **human), distinct=True),
        "unique_machine_opens": Count("delivery_id", filter=_is(opened, **machine), distinct=True),
        "unique_human_clicks": Count("delivery_id", filter=_is(clicked, **human), distinct=True),
        "unique_machine_clicks": Count(
            "delivery_id", filter=_is(clicked, **machine), distinct=True
        ),
    }
    for bounce_class, name in BOUNCE_COUNTERS.items():
        aggregates[name] = Count("id", filter=_is(Kind.BOUNCED, details__bounce_class=bounce_class))
    return log.aggregate(**aggregates)


def _nonzero(rows: Iterable[dict], counters: Sequence[str]) -> list[dict]:
    return [row for row in rows if any(row[c] for c in counters)]


def _link_rows(log: models.QuerySet) -> list[dict]:
    rows = (
        log.filter(kind=Kind.CLICKED, link_index__isnull=False)
        .values("link_index")
        .annotate(
            unique_human_clicks=Count("delivery_id", filter=Q(machine=False), distinct=True),
            total_human_clicks=Count("id", filter=Q(machine=False)),
            total_machine_clicks=Count("id", filter=Q(machine=True)),
        )
        .order_by()
    )
    return list(rows)


def _hourly_rows(log: models.QuerySet) -> list[dict]:
    rows = (
        log.filter(kind__in=[Kind.OPENED, Kind.CLICKED])
        .values(hour=TruncHour("occurred_at", tzinfo=datetime.UTC))
        .annotate(
            human_opens=Count("id", filter=Q(kind=Kind.OPENED, machine=False)),
            machine_opens=Count("id", filter=Q(kind=Kind.OPENED, machine=True)),
            human_clicks=Count("id", filter=Q(kind=Kind.CLICKED, machine=False)),
            machine_clicks=Count("id", filter=Q(kind=Kind.CLICKED, machine=True)),
        )
        .order_by()
    )
    return list(rows)


def _domain_rows(log: models.QuerySet) -> list[dict]:
    rows = (
        log.exclude(recipient_domain="")
        .values(domain=models.F("recipient_domain"))
        .annotate(
            sent=Count("id", filter=Q(kind=Kind.SENT)),
            failed=Count("id", filter=Q(kind=Kind.FAILED)),
            bounced=Count("id", filter=Q(kind=Kind.BOUNCED)),
            unique_human_opens=Count(
                "delivery_id", filter=Q(kind=Kind.OPENED, machine=False), distinct=True
            ),
        )
        .order_by()
    )
    return _nonzero(rows, ("sent", "failed", "bounced", "unique_human_opens"))


def _engagement_from_log(log: models.QuerySet) -> list[dict]:
    opened, clicked = Q(kind=Kind.OPENED), Q(kind=Kind.CLICKED)
    human, machine = Q(machine=False), Q(machine=True)
    rows = (
        log.filter(kind__in=[Kind.OPENED, Kind.CLICKED], delivery_id__isnull=False)
        .values("delivery_id")
        .annotate(
            subscriber=Min("subscriber_id"),
            first_human_open_at=Min("occurred_at", filter=opened & human),
            first_machine_open_at=Min("occurred_at", filter=opened & machine),
            first_human_click_at=Min("occurred_at", filter=clicked & human),
            first_machine_click_at=Min("occurred_at", filter=clicked & machine),
            human_opens=Count("id", filter=opened & human),
            machine_opens=Count("id", filter=opened & machine),
            human_clicks=Count("id", filter=clicked & human),
            machine_clicks=Count("id", filter=clicked & machine),
        )
        .order_by()
    )
    return [
        {**{k: v for k, v in row.items() if k != "subscriber"}, "subscriber_id": row["subscriber"]}
        for row in rows
    ]


def _link_engagement_from_log(log: models.QuerySet) -> list[dict]:
    rows = (
        log.filter(kind=Kind.CLICKED, delivery_id__isnull=False, link_index__isnull=False)
        .values("delivery_id", "link_index")
        .annotate(
            human_clicks=Count("id", filter=Q(machine=False)),
            machine_clicks=Count("id", filter=Q(machine=True)),
        )
        .order_by()
    )
    return list(rows)


def rebuild_campaign(campaign_id: int) -> CampaignStats:
    """Recomputes every rollup of the campaign from the raw log; returns its CampaignStats.

    For repair (after a partition was restored, or a bug) and to check the incremental
    path. Run it while the drain is idle: events drained meanwhile may be counted twice.
    ``recipients`` is kept: it does not come from the log.
    """
    log = TrackingEvent.objects.filter(campaign_id=campaign_id)
    with transaction.atomic():
        stats, _ = CampaignStats.objects.select_for_update().get_or_create(campaign_id=campaign_id)
        for name, value in _campaign_totals(log).items():
            setattr(stats, name, value)
        stats.save()
        for model, rows in (
            (LinkStats, _link_rows(log)),
            (CampaignHourlyStats, _hourly_rows(log)),
            (CampaignDomainStats, _domain_rows(log)),
        ):
            model.objects.filter(campaign_id=campaign_id).delete()
            model.objects.bulk_create(model(campaign_id=campaign_id, **row) for row in rows)
        for model, rows in (
            (DeliveryEngagement, _engagement_from_log(log)),
            (LinkEngagement, _link_engagement_from_log(log)),
        ):
            model.objects.filter(campaign_id=campaign_id).delete()
            model.objects.bulk_create(model(campaign_id=campaign_id, **row) for row in rows)
    return stats


# --- Per-list daily numbers ------------------------------------------------------------------


def roll_up_lists(day: datetime.date) -> int:
    """Writes ListDailyStats of every list for ``day`` (in the site's time zone).

    Set-based: a handful of grouped queries over the lists' subscriptions and their
    history, then one bulk upsert, whatever the number of lists. Running it again for
    the same day replaces that day's rows. Returns how many rows were written.
    """
    from lists import models as lists_models

    zone = timezone.get_default_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    end = start + datetime.timedelta(days=1)
    Subscription = lists_models.Subscription  # noqa: N806
    Status = Subscription.Status  # noqa: N806
    numbers: dict[int, Counter] = defaultdict(Counter)
    created = Subscription.objects.filter(created_at__gte=start, created_at__lt=end)
    for list_id, n in _grouped(created, "mailing_list_id"):
        numbers[list_id]["subscribed"] = n
    confirmed = Subscription.objects.filter(confirmed_at__gte=start, confirmed_at__lt=end)
    for list_id, n in _grouped(confirmed, "mailing_list_id"):
        numbers[list_id]["confirmed"] = n
    changes = lists_models.SubscriptionChange.objects.filter(
        created_at__gte=start,
        created_at__lt=end,
        new_status__in=[Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED],
    )
    for (list_id, status), n in _grouped(changes, "subscription__mailing_list_id", "new_status"):
        numbers[list_id][status] = n
    for list_id, n in _sizes_at(end):
        numbers[list_id]["size"] = n
    rows = [ListDailyStats(mailing_list_id=list_id, day=day, **c) for list_id, c in numbers.items()]
    ListDailyStats.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["mailing_list", "day"],
        update_fields=["subscribed", "confirmed", "unsubscribed", "bounced", "complained", "size"],
    )
    return len(rows)


def _grouped(queryset: models.QuerySet, *by: str) -> list[tuple]:
    rows = queryset.values_list(*by).annotate(n=Count("id")).order_by()
    return [(row[0] if len(by) == 1 else tuple(row[:-1]), row[-1]) for row in rows]


def _sizes_at(moment: datetime.datetime) -> list[tuple[int, int]]:
    """Confirmed subscriptions per list at ``moment``, from the history of each one.

    A subscription's status then is the new status of its last change before the moment,
    else the old status of its first change after it, else its status now.
    """
    from django.db.models import OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from lists.models import Subscription, SubscriptionChange

    history = SubscriptionChange.objects.filter(subscription_id=OuterRef("id"))
    before = history.filter(created_at__lt=moment).order_by("-created_at", "-id")
    after = history.filter(created_at__gte=moment).order_by("created_at", "id")
    then = (
        Subscription.objects.filter(created_at__lt=moment)
        .annotate(
            status_then=Coalesce(
                Subquery(before.values("new_status")[:1]),
                Subquery(after.values("old_status")[:1]),
                "status",
            )
        )
        .filter(status_then=Subscription.Status.CONFIRMED)
    )
    return _grouped(then, "mailing_list_id")
