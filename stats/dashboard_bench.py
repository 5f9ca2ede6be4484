"""Benchmarks of the failure report and the campaign key-numbers page, run by
``bench_failure_report`` and ``bench_stats_page``.

Both build throw-away data at scale (COPY into the event log on PostgreSQL, bulk inserts
elsewhere), measure, and delete everything they made, by id range, before returning.
The campaign page's data is what production would hold: events each about one of the
campaign's deliveries, and rollups rebuilt from those events by stats.rollups, so every
number on the page comes from the log.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from campaigns import freezing
from campaigns.models import Campaign, Link
from lists.models import MailingList
from sending.benchmark import add_domain
from sending.models import Delivery, Relay
from stats import events, reports, rollups
from stats.bench_processes import child_env
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    DeliveryEngagement,
    FailureReport,
    LinkEngagement,
    LinkStats,
    TrackingEvent,
)

TABLE = TrackingEvent._meta.db_table
COPY_COLUMNS = (
    "occurred_at",
    "kind",
    "recipient_domain",
    "link_index",
    "machine",
    "details",
    "account_id",
    "campaign_id",
    "mailing_list_id",
    "relay_id",
    "subscriber_id",
)
BIG_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "icloud.com",
    "gmx.de",
    "web.de",
    "orange.fr",
    "aol.com",
    "comcast.net",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "t-online.de",
    "libero.it",
    "free.fr",
    "btinternet.com",
    "proton.me",
]
FAILURE_MIX = {
    "sent": 40,
    "delivered": 15,
    "opened": 25,
    "clicked": 8,
    "failed": 4,
    "bounced": 6,
    "complained": 1,
    "unsubscribed": 1,
}
CHUNK = 100_000


# --- Filling the log --------------------------------------------------------------------------


@dataclass
class Population:
    """Where generated events point: weighted domains, relays, subscribers and accounts."""

    account_ids: list[int]
    relay_ids: list[int]
    subscribers: int = 200_000
    campaign_id: int | None = None
    mailing_list_id: int | None = None
    kinds: dict[str, int] | None = None


def _domains(rng: random.Random) -> tuple[list[str], list[float]]:
    # A few giants and a long tail, roughly like a real list.
    tail = [f"mx{i}.example.net" for i in range(2000)]
    weights = [30 / (i + 1) for i in range(len(BIG_DOMAINS))] + [rng.random() * 0.02 for _ in tail]
    return BIG_DOMAINS + tail, weights


def _rows(
    n: int, start: datetime.datetime, span: datetime.timedelta, pop: Population, seed: int
) -> Iterator[list[tuple]]:
    """Chunks of rows in time order (the log is appended in time order)."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible by seed)
    domains, weights = _domains(rng)
    # Each subscriber has one address, so one domain: drawn once per subscriber.
    domain_of = rng.choices(domains, weights, k=pop.subscribers + 1)
    mix = pop.kinds or FAILURE_MIX
    kinds, kind_weights = list(mix), list(mix.values())
    # A small set of bad addresses fails again and again: the report must find them.
    bad = [rng.randrange(1, pop.subscribers) for _ in range(max(pop.subscribers // 50, 1))]
    step = span / max(n, 1)
    for first in range(0, n, CHUNK):
        size = min(CHUNK, n - first)
        chunk_kinds = rng.choices(kinds, kind_weights, k=size)
        rows = []
        for i in range(size):
            kind = chunk_kinds[i]
            failing = kind in ("failed", "bounced") and rng.random() < 0.6
            subscriber = rng.choice(bad) if failing else rng.randrange(1, pop.subscribers)
            rows.append(
                (
                    start + step * (first + i),
                    kind,
                    domain_of[subscriber],
                    rng.randrange(1, 21) if kind == "clicked" else None,
                    kind == "opened" and rng.random() < 0.4,
                    pop.account_ids[subscriber % len(pop.account_ids)],
                    pop.campaign_id,
                    pop.mailing_list_id,
                    rng.choice(pop.relay_ids),
                    subscriber,
                )
            )
        yield rows


def _copy_text(rows: list[tuple]) -> str:
    out = io.StringIO()
    stamp, stamp_text = None, ""
    for at, kind, domain, link, machine, account, campaign, mlist, relay, sub in rows:
        if at.second != getattr(stamp, "second", None) or at.minute != stamp.minute:
            stamp, stamp_text = at, at.isoformat()
        out.write(
            f"{stamp_text}\t{kind}\t{domain}\t{link if link else chr(92) + 'N'}\t"
            f"{'t' if machine else 'f'}\t{{}}\t{account}\t{campaign or chr(92) + 'N'}\t"
            f"{mlist or chr(92) + 'N'}\t{relay}\t{sub}\n"
        )
    return out.getvalue()


def fill_log(
    n: int, start: datetime.datetime, span: datetime.timedelta, pop: Population, seed: int = 1
) -> tuple[int, int]:
    """Appends n events spread over [start, start + span); returns (first id, last id)."""
    before = TrackingEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    for rows in _rows(n, start, span, pop, seed):
        if connection.vendor == "postgresql":
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {TABLE} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
            ):
                copy.write(_copy_text(rows))
        else:
            TrackingEvent.objects.bulk_create(
                (
                    TrackingEvent(**dict(zip(COPY_COLUMNS, (*row[:5], {}, *row[5:]), strict=True)))
                    for row in rows
                ),
                batch_size=5000,
            )
    if connection.vendor == "postgresql":
        # As autovacuum soon would: fresh statistics, and no dead rows of an earlier run
        # (deleted by id range) left in the indexes for the report to step over.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
    last = TrackingEvent.objects.order_by("-id").values_list("id", flat=True).first() or before
    return before + 1, last


def delete_events(first: int, last: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id BETWEEN %s AND %s", [first, last])  # noqa: S608


# --- Workers ----------------------------------------------------------------------------------


def start_workers(count: int, log_dir: Path) -> subprocess.Popen:
    """One ``celery worker -Q stats -c count``; returns once it is ready."""
    log = log_dir / "stats-worker.log"
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailpanel",
            "worker",
            "-Q",
            "stats",
            "-c",
            str(count),
            "--prefetch-multiplier",
            "1",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"bench-stats-{os.getpid()}@%h",
            "-l",
            "INFO",
        ],
        cwd=settings.BASE_DIR,
        env=child_env(),
        start_new_session=True,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while "ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_workers(process)
            raise RuntimeError(f"the stats worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return process


def stop_workers(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# --- The failure report -----------------------------------------------------------------------


def _wait(report: FailureReport, timeout: float) -> FailureReport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status != FailureReport.Status.RUNNING:
            return report
        time.sleep(0.05)
    raise RuntimeError(f"report {report.id}: {report.parts_done}/{report.parts_total} parts done")


def run_failure_report(
    events: int,
    parts: int | None,
    workers: int,
    use_running: bool,
    progress: Callable[[str], None],
    timeout: float = 3600,
) -> dict:
    """Fills the log, times the report through real workers, checks it, cleans up."""
    user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:10]}")
    relays = [
        Relay.objects.create(name=f"bench-{user.id}-{i}", host=f"smtp{i}.bench.example")
        for i in range(4)
    ]
    now = timezone.now()
    pop = Population(account_ids=[user.id, user.id + 1_000_000], relay_ids=[r.id for r in relays])
    first = last = 0
    worker = None
    try:
        started = time.monotonic()
        first, last = fill_log(
            events, now - datetime.timedelta(days=60), datetime.timedelta(days=60), pop
        )
        progress(f"filled {events} events in {time.monotonic() - started:.1f} s")
        if not use_running:
            worker = start_workers(workers, Path(tempfile.mkdtemp(prefix="bench-stats-")))
        started = time.monotonic()
        report = reports.request_report(
            account=None,
            requested_by=user,
            parts=parts,
            start=now - datetime.timedelta(days=30),
            end=now,
        )
        report = _wait(report, timeout)
        seconds = time.monotonic() - started
        progress(f"report {report.status} in {seconds:.2f} s over {report.parts_total} parts")
        started = time.monotonic()
        matches = reports.matches_single_query(report)
        single = time.monotonic() - started
        return {
            "events": events,
            "seconds": round(seconds, 3),
            "parts": report.parts_total,
            "workers": workers if not use_running else "running",
            "matches_single_query": matches,
            "single_query_seconds": round(single, 3),
            "status": report.status,
            "failures_counted": report.result.get("failed", 0) + report.result.get("bounced", 0),
            "database": connection.vendor,
        }
    finally:
        if worker is not None:
            stop_workers(worker)
        if last:
            delete_events(first, last)
        FailureReport.objects.filter(requested_by=user).delete()
        Relay.objects.filter(id__in=[r.id for r in relays]).delete()
        user.delete()


# --- The campaign key-numbers page ---------------------------------------------------------


def _audience(mailing_list: MailingList, campaign: Campaign, n: int) -> None:
    """n subscribers, their subscriptions and one sent delivery each."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            series = "FROM generate_series(1, %s) AS g"
            cursor.execute(
                "INSERT INTO lists_subscriber (uuid, account_id, email, domain, name, fields, "
                "consent, created_at, updated_at) SELECT gen_random_uuid(), %s, "
                "'r' || g || '@mx' || (g %% 500) || '.example.net', 'mx' || (g %% 500) || "
                f"'.example.net', '', '{{}}', '{{}}', now(), now() {series}",  # noqa: S608
                [mailing_list.owner_id, n],
            )
        else:
            cursor.execute(
                "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %s) "
                "INSERT INTO lists_subscriber (uuid, account_id, email, domain, name, fields, "
                "consent, created_at, updated_at) SELECT lower(hex(randomblob(16))), %s, "
                "'r' || x || '@mx' || (x %% 500) || '.example.net', 'mx' || (x %% 500) || "
                "'.example.net', '', '{}', '{}', datetime('now'), datetime('now') FROM g",
                [n, mailing_list.owner_id],
            )
        cursor.execute(
            "INSERT INTO sending_delivery (campaign_id, subscriber_id, status, attempts, "
            "smtp_response, created_at, sent_at) SELECT %s, id, 'sent', 1, '', created_at, "
            "created_at FROM lists_subscriber WHERE account_id = %s",
            [campaign.id, mailing_list.owner_id],
        )


# What the rest of the log holds besides one "sent" per delivery, by weight. At three
# events per delivery: about 1.5 % bounced, 0.5 % unsubscribed, 15 clicks and 180 opens
# (privacy proxies' included) per 100 messages.
ENGAGEMENT_MIX = {
    "opened": 91, "clicked": 7.5, "bounced": 0.75, "unsubscribed": 0.25, "complained": 0.03,
}  # fmt: skip
BOUNCE_CLASSES = ("hard", "hard", "hard", "soft", "soft", "sender_side")
REASONS = ("", "", "Too many mails", "Not relevant to me", "I never signed up")
EVENT_COLUMNS = events.COLUMNS


@dataclass
class Recipients:
    """The campaign's deliveries: ids, subscribers and receiving domains, in parallel."""

    deliveries: list[int]
    subscribers: list[int]
    domains: list[str]

    @classmethod
    def of(cls, campaign: Campaign) -> Recipients:
        found = cls([], [], [])
        interned: dict[str, str] = {}
        rows = Delivery.objects.filter(campaign=campaign).order_by("id")
        for delivery, subscriber, domain in rows.values_list(
            "id", "subscriber_id", "subscriber__domain"
        ).iterator(chunk_size=20_000):
            found.deliveries.append(delivery)
            found.subscribers.append(subscriber)
            found.domains.append(interned.setdefault(domain, domain))
        return found


def _campaign_events(
    campaign: Campaign, recipients: Recipients, n: int, links: int, seed: int = 3
) -> Iterator[list[tuple]]:
    """Chunks of n events of the campaign, each about one of its deliveries: a "sent" per
    delivery in the first hour, then opens and clicks by an engaged part of the audience
    (some by machines), fading over three days, and bounces, unsubscribes and complaints
    by others. Rows in events.COLUMNS order."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible by seed)
    count = len(recipients.deliveries)
    order = list(range(count))
    rng.shuffle(order)
    openers = order[: max(1, count * 40 // 100)]
    clickers = openers[: max(1, count * 10 // 100)]
    others = order[len(openers) :] or order
    start = campaign.started_at
    kinds, weights = list(ENGAGEMENT_MIX), list(ENGAGEMENT_MIX.values())
    account, campaign_id, list_id = campaign.account_id, campaign.id, _list_of(campaign)

    def row(kind: str, i: int, at: datetime.datetime, **more: object) -> tuple:
        return (
            at, kind, account, campaign_id, list_id, recipients.subscribers[i],
            recipients.deliveries[i], None, recipients.domains[i], more.get("link"),
            more.get("machine", False), more.get("details", {}),
        )  # fmt: skip

    def later() -> datetime.datetime:
        hours = 1 + min(rng.expovariate(1 / 8), 71)
        return start + datetime.timedelta(hours=hours)

    produced, chunk = 0, []
    sent_step = datetime.timedelta(hours=1) / count
    for i in range(min(count, n)):
        chunk.append(row("sent", i, start + sent_step * i))
        produced += 1
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    while produced < n:
        kind = rng.choices(kinds, weights)[0]
        if kind == "opened":
            i = rng.choice(openers)
            chunk.append(row(kind, i, later(), machine=rng.random() < 0.35))
        elif kind == "clicked":
            i = rng.choice(clickers)
            chunk.append(row(kind, i, later(), link=rng.randint(1, links),
                             machine=rng.random() < 0.05))  # fmt: skip
        elif kind == "bounced":
            chunk.append(row(kind, rng.choice(others), later(),
                             details={"bounce_class": rng.choice(BOUNCE_CLASSES)}))  # fmt: skip
        elif kind == "unsubscribed":
            chunk.append(row(kind, rng.choice(order), later(),
                             details={"reason": rng.choice(REASONS)}))  # fmt: skip
        else:
            chunk.append(row(kind, rng.choice(order), later()))
        produced += 1
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _list_of(campaign: Campaign) -> int | None:
    return campaign.lists.values_list("id", flat=True).first()


def _event_copy_text(rows: list[tuple]) -> str:
    out = io.StringIO()
    null = chr(92) + "N"
    for row in rows:
        at, kind, account, campaign, mlist, sub, delivery, _, domain, link, machine, details = row
        out.write(
            f"{at.isoformat()}\t{kind}\t{account}\t{campaign}\t{mlist or null}\t{sub}\t"
            f"{delivery}\t{null}\t{domain}\t{null if link is None else link}\t"
            f"{'t' if machine else 'f'}\t{json.dumps(details)}\n"
        )
    return out.getvalue()


def write_campaign_events(
    campaign: Campaign, recipients: Recipients, n: int, links: int
) -> tuple[int, int]:
    """Appends n events of the campaign to the log; returns (first id, last id)."""
    before = TrackingEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    for rows in _campaign_events(campaign, recipients, n, links):
        if connection.vendor == "postgresql":
            statement = f"COPY {TABLE} ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
            with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
                copy.write(_event_copy_text(rows))
        else:
            TrackingEvent.objects.bulk_create(
                (TrackingEvent(**dict(zip(EVENT_COLUMNS, row, strict=True))) for row in rows),
                batch_size=5000,
            )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
    last = TrackingEvent.objects.order_by("-id").values_list("id", flat=True).first() or before
    return before + 1, last


def roll_up(campaign: Campaign, deliveries: int) -> CampaignStats:
    """The campaign's rollups rebuilt from its events in the log, by the same function that
    repairs them in production (stats.rollups.rebuild_campaign)."""
    stats = rollups.rebuild_campaign(campaign.id)
    # The one number the log does not hold: the audience (the deliveries made).
    CampaignStats.objects.filter(campaign=campaign).update(recipients=deliveries)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (CampaignStats, LinkStats, CampaignHourlyStats, CampaignDomainStats):
                cursor.execute(f"ANALYZE {model._meta.db_table}")
    return stats


def rollups_match_log(campaign: Campaign) -> bool:
    """The page's totals against a count of the campaign's events by kind."""
    stats = CampaignStats.objects.get(campaign=campaign)
    counted = dict(
        TrackingEvent.objects.filter(campaign_id=campaign.id)
        .values_list("kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    bounces = stats.hard_bounces + stats.soft_bounces + stats.sender_side_bounces
    return (
        stats.sent == counted.get("sent", 0)
        and stats.total_human_opens + stats.total_machine_opens == counted.get("opened", 0)
        and stats.total_human_clicks + stats.total_machine_clicks == counted.get("clicked", 0)
        and bounces == counted.get("bounced", 0)
        and stats.unsubscribes == counted.get("unsubscribed", 0)
        and stats.complaints == counted.get("complained", 0)
    )


def _timed_pages(user: object, campaign: Campaign, runs: int) -> list[float]:
    client = Client()
    client.force_login(user)
    url = reverse("stats:campaign", args=[campaign.uuid])
    timings = []
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["*"]):
        client.get(url)  # warm the template cache and the connection
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"the page answered {response.status_code}")
    return timings


def run_stats_page(
    deliveries: int, events: int, runs: int, progress: Callable[[str], None]
) -> dict:
    """Builds a sent campaign with its deliveries and events, its rollups from those events,
    times its page, deletes everything; returns the measurements."""
    from campaigns.benchmark import small_body

    user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:10]}")
    mailing_list = MailingList.objects.create(owner=user, name="Benchmark list")
    campaign = Campaign.objects.create(
        account=user,
        name="Benchmark",
        subject="Hello",
        from_email="news@bench.example.com",
        body=small_body(),
        body_format="html",
    )
    campaign.lists.set([mailing_list])
    # Production settings freeze only campaigns from a verified sending domain.
    add_domain(user, "none")
    first = last = 0
    try:
        started = time.monotonic()
        freezing.freeze(campaign)
        began = timezone.now() - datetime.timedelta(days=3)
        Campaign.objects.filter(id=campaign.id).update(status="sent", started_at=began)
        campaign.refresh_from_db()
        _audience(mailing_list, campaign, deliveries)
        recipients = Recipients.of(campaign)
        links = Link.objects.filter(campaign=campaign).count()
        first, last = write_campaign_events(campaign, recipients, events, links)
        built = time.monotonic() - started
        progress(f"built {deliveries} deliveries and {events} events in {built:.1f} s")
        started = time.monotonic()
        roll_up(campaign, deliveries)
        rolled = time.monotonic() - started
        progress(f"rolled the campaign up from its events in {rolled:.1f} s")
        timings = _timed_pages(user, campaign, runs)
        return {
            "deliveries": deliveries,
            "events": events,
            "runs": runs,
            "median_ms": round(statistics.median(timings), 2),
            "max_ms": round(max(timings), 2),
            "min_ms": round(min(timings), 2),
            "build_seconds": round(built, 1),
            "rollup_seconds": round(rolled, 1),
            "rollups_match_log": rollups_match_log(campaign),
            "database": connection.vendor,
        }
    finally:
        if last:
            delete_events(first, last)
        with transaction.atomic(), connection.cursor() as cursor:
            for model in (DeliveryEngagement, LinkEngagement):
                # No foreign key to the campaign (stats.models): deleted by hand.
                model.objects.filter(campaign_id=campaign.id).delete()
            cursor.execute("DELETE FROM sending_delivery WHERE campaign_id = %s", [campaign.id])
            cursor.execute("DELETE FROM lists_subscriber WHERE account_id = %s", [user.id])
        campaign.delete()
        user.delete()
