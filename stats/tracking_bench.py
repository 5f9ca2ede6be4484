"""The tracking benchmark (``manage.py bench_tracking``): real gunicorn workers on the
configured database and Redis, a load generator in another process mixing opens and
clicks over many recipients, then the drain until the buffer is empty, and a count of
what reached the log. Everything it creates is deleted at the end.

It measures the Redis buffer, so it refuses to run without one (REDIS_URL unset, or Redis
not answering): hits would go straight to the database and the numbers would mean
something else.

Counting: a hit's time is taken once per request, to the microsecond, and kept as the
event's ``occurred_at``. So one hit written twice is two identical rows of (delivery,
kind, link, time), while two requests for the same path are two different rows. The
log's distinct hits against the answers the load generator got give ``lost`` and
``duplicated`` separately. The Python load generator waits for every answer, so with it
the comparison is exact; wrk abandons the requests in flight at its deadline (at most
one per connection), whose hits may still be kept: those show as ``kept_unanswered``
and could hide as many lost ones (``count_exact`` says which client was used).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from campaigns import freezing, links
from campaigns.models import Campaign
from lists.models import MailingList, Subscriber, Subscription
from sending.benchmark import add_domain
from sending.models import Delivery
from stats import drain, tracking
from stats.bench_processes import child_env
from stats.models import (
    CampaignDomainStats,
    CampaignHourlyStats,
    CampaignStats,
    DeliveryEngagement,
    LinkEngagement,
    LinkStats,
    TrackingEvent,
)

BASE_DIR = Path(__file__).resolve().parent.parent
LINKS = 5
# Threads per gunicorn worker: keep-alive connections need the threaded worker; more
# threads than two only queue on the GIL.
THREADS = int(os.environ.get("BENCH_TRACKING_THREADS", "2"))


class NotMeasurable(RuntimeError):
    """The benchmark cannot measure what it claims to here (no Redis buffer)."""


def check_buffer() -> None:
    """Raises NotMeasurable unless the tracking endpoints would buffer hits in Redis."""
    client = tracking.buffer_client()
    if client is None:
        raise NotMeasurable(
            "bench_tracking measures the Redis buffer of the tracking endpoints, and "
            "REDIS_URL is not set: hits would be written straight to the database. "
            "Set REDIS_URL and run it again."
        )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise NotMeasurable(f"Redis at REDIS_URL does not answer ({exc}).") from exc


@dataclass
class Setup:
    account: object
    campaign: Campaign
    delivery_ids: list[int]


def create(recipients: int) -> Setup:
    """A throw-away account, list, audience, sent campaign and deliveries (in bulk)."""
    account = get_user_model().objects.create(username=f"bench-track-{uuid.uuid4().hex[:10]}")
    mailing_list = MailingList.objects.create(owner=account, name="Tracking benchmark")
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(
            account=account, email=f"r{i}@bench{i % 50}.example", domain=f"bench{i % 50}.example"
        )  # fmt: skip
        for i in range(recipients)
    )
    Subscription.objects.bulk_create(
        Subscription(mailing_list=mailing_list, subscriber=s, status="confirmed", source="import")
        for s in subscribers
    )
    body = "".join(
        f'<p><a href="https://example.com/s/{n}">Story {n}</a></p>' for n in range(LINKS)
    )
    campaign = Campaign.objects.create(
        account=account, name="Tracking benchmark", subject="Bench",
        from_email="news@bench.example.com", body=body, body_format=Campaign.BodyFormat.HTML,
    )  # fmt: skip
    campaign.lists.set([mailing_list])
    # Production settings freeze only campaigns from a verified sending domain.
    add_domain(account, "none")
    freezing.freeze(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
    sent_at = timezone.now() - timedelta(hours=1)
    deliveries = Delivery.objects.bulk_create(
        Delivery(campaign=campaign, subscriber=s, status="sent", sent_at=sent_at)
        for s in subscribers
    )
    return Setup(account, campaign, [d.id for d in deliveries])


def paths_file(setup: Setup, folder: Path) -> Path:
    """Opens and clicks of every recipient, shuffled: as many opens as clicks."""
    rng = random.Random(42)  # noqa: S311 (a repeatable mix, not a secret)
    paths = []
    for delivery_id in setup.delivery_ids:
        token = links.tracking_token(setup.campaign.pk, delivery_id)
        paths.append(f"/t/o/{token}")
        paths.append(f"/t/c/{token}/{rng.randint(1, LINKS)}")
    rng.shuffle(paths)
    target = folder / "paths.txt"
    target.write_text("\n".join(paths) + "\n", encoding="ascii")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, log: Path) -> subprocess.Popen:
    env = child_env(ALLOWED_HOSTS=",".join([*settings.ALLOWED_HOSTS, "127.0.0.1"]))
    command = [
        sys.executable, "-m", "gunicorn", "mailpanel.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
        "--threads", str(THREADS), "--keep-alive", "30", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=out)  # noqa: S603
    _wait_ready(port, process, log)
    return process


def _wait_ready(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    probe = b"GET /t/o/warm-up HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                # Not a valid token: answered (404) and never counted.
                sock.sendall(probe)
                if sock.recv(12).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 30 seconds")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(port: int, seconds: float, connections: int, paths: Path, client: str) -> dict:
    """Runs the load generator in another process; returns its JSON result."""
    if client == "wrk":
        script = Path(__file__).with_name("loadgen.lua")
        command = [
            "wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}", "--", str(paths),
        ]  # fmt: skip
    else:
        command = [sys.executable, "-m", "stats.loadgen", str(port), str(seconds),
                   str(connections), str(paths)]  # fmt: skip
    done = subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, check=True)  # noqa: S603
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if client == "wrk":
        result["accepted"] = result["requests"] - result.pop("non_2xx_3xx")
    return result


def drain_all(report: Callable[[str], None]) -> float:
    """Drains until the buffer is empty; returns the seconds it took."""
    started = time.monotonic()
    client = tracking.buffer_client()
    if client is None:
        return 0.0
    while client.llen(tracking.BUFFER_KEY) or client.llen(drain.PROCESSING_KEY):
        written = drain.drain(max_seconds=60)
        report(f"drained {written} hits")
    return time.monotonic() - started


def count_log(campaign_id: int) -> tuple[int, int]:
    """(events, distinct hits) of the campaign in the log (see the module's docstring)."""
    events = TrackingEvent.objects.filter(campaign_id=campaign_id)
    hits = events.values("delivery_id", "kind", "link_index", "occurred_at").distinct()
    return events.count(), hits.count()


def clean_up(setup: Setup) -> None:
    campaign_id = setup.campaign.pk
    with connection.cursor() as cursor:
        # The log and engagement have no foreign keys: delete them by hand.
        table = TrackingEvent._meta.db_table
        cursor.execute(f"DELETE FROM {table} WHERE campaign_id = %s", [campaign_id])  # noqa: S608
    for model in (DeliveryEngagement, LinkEngagement, LinkStats, CampaignHourlyStats,
                  CampaignDomainStats, CampaignStats):  # fmt: skip
        model.objects.filter(campaign_id=campaign_id).delete()
    Delivery.objects.filter(campaign_id=campaign_id).delete()
    setup.account.delete()


def run(
    seconds: float, recipients: int, connections: int, client: str, report: Callable[[str], None]
) -> dict:
    """Sets up, loads, drains, counts and cleans up; returns the measurements."""
    check_buffer()
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    folder = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    setup = create(recipients)
    try:
        paths = paths_file(setup, folder)
        port = free_port()
        server = start_gunicorn(port, 2, folder / "gunicorn.log")
        try:
            # Each worker loads code, connections and the campaign's links on its first
            # requests: a short warm-up keeps that out of the measured latencies.
            warm_up = load(port, 1, connections, paths, client)
            report(f"load for {seconds}s with {client}, {connections} connections")
            result = load(port, seconds, connections, paths, client)
        finally:
            stop(server)
        drain_seconds = drain_all(report)
        in_log, distinct = count_log(setup.campaign.pk)
    finally:
        clean_up(setup)
        shutil.rmtree(folder, ignore_errors=True)
    accepted = result["accepted"] + warm_up["accepted"]
    return {
        "hits_per_second": round(result["accepted"] / result["seconds"], 1),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "accepted": accepted,
        "in_log": in_log,
        "distinct_in_log": distinct,
        "lost": max(0, accepted - distinct),
        "duplicated": in_log - distinct,
        "kept_unanswered": max(0, distinct - accepted),
        "count_exact": client == "python",
        "errors": result["errors"] + warm_up["errors"],
        "drain_seconds": round(drain_seconds, 2),
        "client": client,
        "buffer": "redis",
    }
