"""The send benchmark: a throw-away account and audience, a realistic campaign, and
the real pipeline (beat, Celery worker processes, the database, Redis) timed from
the scheduled moment until every delivery is recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from campaigns import designs, scheduling
from campaigns.models import Campaign, EmailTemplate
from lists import planner
from lists.models import MailingList, Subscriber, Subscription
from mailpanel.lib import encryption
from sending import dkim
from sending.models import Delivery, Relay, SendBatch, SendingDomain
from stats.models import TrackingEvent

FINAL = ("sent", "failed", "unknown", "skipped")


def body_html() -> str:
    """About 10 KB of body with 6 merge tags and 20 links."""
    paragraphs = []
    for i in range(20):
        paragraphs.append(
            f"<h2>Story {i + 1}: what changed this week</h2>"
            "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
            "tempor incididunt ut labore et dolore magna aliqua. " * 3 + "</p>"
            f'<p><a href="https://news.example.com/s/{i + 1}?utm=mail">Read story {i + 1}</a></p>'
        )
    tags = (
        "<p>Hello {{ subscriber.name|default:'friend' }} ({{ subscriber.email }}), from "
        "{{ subscriber.fields.city|default:'your town' }}.</p>"
        "<p>{{ list.name }} · {{ campaign.subject }}</p>"
        "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"
    )
    return tags + "".join(paragraphs)


def create_audience(account: object, recipients: int) -> MailingList:
    mailing_list = MailingList.objects.create(
        owner=account, name="Benchmark list", from_name="Bench", from_email="news@bench.example.com"
    )
    now = timezone.now()
    chunk = 20000
    for start in range(0, recipients, chunk):
        count = min(chunk, recipients - start)
        subscribers = Subscriber.objects.bulk_create(
            [
                Subscriber(
                    account=account, email=f"r{start + i}@bench{(start + i) % 50}.example.org",
                    domain=f"bench{(start + i) % 50}.example.org", name=f"Reader {start + i}",
                    fields={"city": "Aarhus"},
                )
                for i in range(count)
            ],
            batch_size=5000,
        )  # fmt: skip
        Subscription.objects.bulk_create(
            [
                Subscription(mailing_list=mailing_list, subscriber=s, status="confirmed",
                             source="import", confirmed_at=now)
                for s in subscribers
            ],
            batch_size=5000,
        )  # fmt: skip
    MailingList.objects.filter(id=mailing_list.id).update(confirmed_count=recipients)
    # What the panel's import does at its end, so the audience is planned on real counts.
    planner.refresh_after_bulk_write(recipients)
    return mailing_list


def create_campaign(account: object, mailing_list: MailingList) -> Campaign:
    template = EmailTemplate.objects.create(
        account=account, name="Newsletter", html=designs.starting_html("newsletter")
    )
    campaign = Campaign.objects.create(
        account=account, name="Benchmark", subject="This week for {{ subscriber.name }}",
        from_name="Bench News", from_email="news@bench.example.com", template=template,
        body=body_html(), body_format="html", track_opens=True, track_clicks=True,
    )  # fmt: skip
    campaign.lists.set([mailing_list])
    return campaign


def add_domain(account: object, algorithm: str) -> SendingDomain:
    """The campaign's sender domain, verified, for the benchmark's account: production
    settings send only from verified domains. Signed with a key of ``algorithm`` (rsa,
    ed25519), or not at all ("none": a domain with no DKIM key)."""
    key = ""
    if algorithm != "none":
        kind = dkim.RSA_SHA256 if algorithm == "rsa" else dkim.ED25519_SHA256
        key = dkim.generate_private_key(kind)
    return SendingDomain.objects.create(
        account=account, domain="bench.example.com", selector="bench",
        verified_at=timezone.now(), private_key_encrypted=encryption.encrypt(key),
    )  # fmt: skip


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            todo.extend(int(c) for c in children.read_text().split())
    return found


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) of the processes and their children, summed, in MB.

    RSS counts a page shared by a parent and its forked children once per process;
    PSS divides it among them, so its sum is the memory the group really occupies.
    """
    rss = pss = 0
    for root in pids:
        for pid in _descendants(root):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
    return rss / 1024, pss / 1024


@dataclass
class Result:
    recipients: int
    sent: int
    failed: int
    unknown: int
    seconds: float
    messages_per_second: float
    peak_worker_rss_mb: float
    peak_worker_pss_mb: float
    first_message_after_seconds: float | None


def settle_tables() -> None:
    """Vacuums the tables a run fills and empties, before the clock starts.

    Every run deletes what it created: the dead rows of the last run (its subscribers,
    subscriptions, deliveries) are still in the tables and their indexes. Left to
    autovacuum they are cleaned up while the next run is measured, and the planner
    walks over them when it looks up the ends of an index range (every audience
    query of every batch). A database that sends every day is vacuumed between
    campaigns; a run measures that state, not the last run's leftovers.
    """
    if connection.vendor != "postgresql":
        return
    tables = [m._meta.db_table for m in (Subscriber, Subscription, Delivery, SendBatch)]
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")


def start_processes(workers: int, log_dir: Path) -> list[subprocess.Popen]:
    """Beat and one Celery worker with ``workers`` send processes, as docs/production.md
    runs them on a host: the children fork from a parent that has loaded Django, so
    they share its memory."""
    env = {**os.environ, "NODE_HEARTBEAT_SECONDS": "5"}
    python = sys.executable
    commands = [
        [python, "-m", "celery", "-A", "mailpanel", "worker", "-Q", "send,default",
         "-c", str(workers), "--prefetch-multiplier", "1", "--without-gossip",
         "--without-mingle", "-n", "bench@%h", "-l", "WARNING"],
        [python, "-m", "celery", "-A", "mailpanel", "beat", "-l", "WARNING",
         "-s", str(log_dir / "beat-schedule")],
    ]  # fmt: skip
    return [
        subprocess.Popen(  # noqa: S603
            command,
            cwd=settings.BASE_DIR,
            env=env,
            start_new_session=True,
            stdout=(log_dir / f"p{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i, command in enumerate(commands)
    ]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run(recipients: int, smtp: str, dkim_algorithm: str, workers: int, log_dir: Path,
        progress: callable, timeout: float = 900) -> Result:  # fmt: skip
    host, _, port = smtp.rpartition(":")
    User = get_user_model()
    account = User.objects.create(username=f"bench-{time.time_ns()}", email="bench@example.com")
    # The benchmark's relay is the only one in use while it runs; the others come back after.
    enabled = list(Relay.objects.filter(enabled=True).values_list("id", flat=True))
    try:
        with transaction.atomic():
            Relay.objects.filter(id__in=enabled).update(enabled=False)
            # A connection per send process (each holds one while it sends a batch).
            Relay.objects.create(name=f"bench-{account.id}", host=host, port=int(port),
                                 security="none", rate_per_second=100000, weight=100,
                                 max_connections=max(4, workers))  # fmt: skip
            add_domain(account, dkim_algorithm)
            mailing_list = create_audience(account, recipients)
            campaign = create_campaign(account, mailing_list)
        progress(f"created {recipients} recipients")
        settle_tables()
        processes = start_processes(workers, log_dir)
        try:
            time.sleep(4)  # workers up before the clock starts
            send_at = timezone.now() + timedelta(seconds=1)
            scheduling.schedule(campaign, send_at)
            peak_rss = peak_pss = 0.0
            done = 0
            deadline = time.monotonic() + timeout
            batches = SendBatch.objects.filter(campaign=campaign)
            while done < recipients:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not done after {timeout}s; logs in {log_dir}")
                time.sleep(0.5)
                rss, pss = memory_mb([p.pid for p in processes[:-1]])
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                if any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"a pipeline process exited; logs in {log_dir}")
                # The batches say how far the send is, a few hundred rows; counting the
                # deliveries (a scan of the campaign's rows) twice a second would take
                # part of a core from the pipeline being measured. They are counted
                # once no batch is open, and again while retries keep batches coming.
                by_status = dict(batches.values_list("status").annotate(n=Count("id")).order_by())
                if sum(n for s, n in by_status.items() if s != SendBatch.Status.DONE):
                    progress(f"batches {by_status}")
                    continue
                counts = dict(
                    Delivery.objects.filter(campaign=campaign)
                    .values_list("status")
                    .annotate(n=Count("id"))
                    .order_by()
                )
                done = sum(counts.get(s, 0) for s in FINAL)
                progress(f"{done}/{recipients} {counts}")
            # Failed and unknown deliveries have no sent_at: an aggregate skips them.
            times = Delivery.objects.filter(campaign=campaign).aggregate(
                first=Min("sent_at"), last=Max("sent_at")
            )
            finished = timezone.now()
        finally:
            stop_processes(processes)
        first, last = times["first"], times["last"] or finished
        seconds = max((last - send_at).total_seconds(), 0.001)
        counts = dict(
            Delivery.objects.filter(campaign=campaign)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        first_after = round((first - send_at).total_seconds(), 2) if first else None
        return Result(
            recipients=recipients, sent=counts.get("sent", 0), failed=counts.get("failed", 0),
            unknown=counts.get("unknown", 0), seconds=round(seconds, 2),
            messages_per_second=round(counts.get("sent", 0) / seconds, 1),
            peak_worker_rss_mb=round(peak_rss, 1), peak_worker_pss_mb=round(peak_pss, 1),
            first_message_after_seconds=first_after,
        )  # fmt: skip
    finally:
        Relay.objects.filter(name=f"bench-{account.id}").delete()
        Relay.objects.filter(id__in=enabled).update(enabled=True)
        # The event log keeps no foreign keys (it outlives what it records): its "sent"
        # events go by hand, or every run would leave as many rows as it sent.
        campaigns = Campaign.objects.filter(account_id=account.id).values("id")
        TrackingEvent.objects.filter(campaign_id__in=campaigns).delete()
        account.delete()  # and with it the audience, the campaign and the sending domain
