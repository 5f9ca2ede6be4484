"""Load test of the public signup endpoint: gunicorn (2 workers) plus a load generator.

``python manage.py bench_signup --seconds 20`` creates a throwaway account, list and
form, starts gunicorn on a free loopback port against the configured database, runs
the load generator in a separate process (threads with keep-alive http.client
connections, one unique address per request), then checks that nothing was lost.
It measures PostgreSQL and Redis, so it refuses to run without DATABASE_URL (postgres)
and a Redis broker (REDIS_URL).

"Nothing lost" is counted exactly: the server routes the confirmation task to a queue
of the benchmark's own, which no worker consumes and nothing else writes to (a running
worker or beat would skew a count of the shared "default" queue). Afterwards the command
reads the task messages in that queue, and ``lost`` is the accepted signups missing from
the database plus the accepted signups whose confirmation task is not in the queue. The
queue is deleted at the end.

The DNS check is off and the rate limits are raised for the server only (environment of
the server). The last line printed is one JSON object; besides requests per second and
latency it holds the CPU the server (gunicorn's master and workers) and the load generator
spent per request, which stays meaningful on a busy machine where the rates do not.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

ROOT = Path(__file__).resolve().parents[3]
CONFIRMATION_TASK = "lists.tasks.send_confirmation"
# The server's environment names the queue its confirmation tasks go to.
QUEUE_VARIABLE = "BENCH_SIGNUP_QUEUE"


def benchmark_application():  # noqa: ANN201
    """The WSGI application of the benchmark's gunicorn, with the confirmation task routed
    to the queue named in BENCH_SIGNUP_QUEUE (gunicorn calls this factory once per worker,
    before any request)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailpanel.settings")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    from mailpanel.celery import app

    queue = os.environ[QUEUE_VARIABLE]
    app.conf.task_routes = {CONFIRMATION_TASK: {"queue": queue}, **settings.CELERY_TASK_ROUTES}
    return application


def queued_confirmations(broker: str, queue: str) -> set[int]:
    """The subscription ids of the confirmation tasks waiting in a Redis queue.

    Reads kombu's Redis messages: JSON envelopes whose body (base64) is Celery's
    protocol 2 ``[args, kwargs, embed]``; send_confirmation's first argument is the ids.
    """
    import redis

    ids: set[int] = set()
    for raw in redis.Redis.from_url(broker).lrange(queue, 0, -1):
        envelope = json.loads(raw)
        if envelope.get("headers", {}).get("task") != CONFIRMATION_TASK:
            continue
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        ids.update(int(i) for i in args[0])
    return ids


def drop_queue(broker: str, queue: str) -> None:
    """Deletes the benchmark's queue with its messages and kombu's bindings of it."""
    from kombu import Connection, Exchange, Queue

    with Connection(broker) as connection:
        # Declared here first: kombu deletes only the bindings its channel knows of.
        bound = Queue(queue, Exchange(queue), routing_key=queue)(connection.default_channel)
        bound.declare()
        bound.delete()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time of gunicorn's master and workers so far (Linux /proc), or None."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total = 0
        for each in [pid, *map(int, children)]:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    except (OSError, ValueError, IndexError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


# --- The load generator (runs in its own process: ``python -m ... loadgen``) --------------


def run_load(host: str, port: int, path: str, stamp: str, seconds: float, threads: int) -> dict:
    deadline = time.monotonic() + seconds
    results: list[tuple[list[float], list[str], int, int]] = []
    prefix = f"b{os.getpid()}x{int(time.time())}"

    def worker(index: int) -> None:
        latencies: list[float] = []
        accepted: list[str] = []
        refused = errors = 0
        conn = http.client.HTTPConnection(host, port, timeout=10)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            address = f"{prefix}t{index}n{n}@bench.example"
            body = urllib.parse.urlencode({"email": address, "mp_ts": stamp})
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status == 200 and b'"ok": true' in payload:
                accepted.append(address)
            else:
                refused += 1
        conn.close()
        results.append((latencies, accepted, refused, errors))

    started = time.monotonic()
    cpu_started = time.process_time()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    latencies = sorted(x for r in results for x in r[0])
    accepted = [a for r in results for a in r[1]]

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)
            if latencies
            else 0.0
        )

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 2) if latencies else 0.0,
        "accepted_addresses": accepted,
        "refused": sum(r[2] for r in results),
        "errors": sum(r[3] for r in results),
        # The generator shares the machine with the server: what it cost, to tell apart.
        "loadgen_cpu_ms_per_request": round(
            (time.process_time() - cpu_started) * 1000 / max(1, len(latencies)), 2
        ),
    }


# --- The command --------------------------------------------------------------------------


class Command(BaseCommand):
    help = "Benchmarks the public signup endpoint under gunicorn; last line is JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=float, default=20.0)
        parser.add_argument("--clients", type=int, default=12, help="load generator threads")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker")
        parser.add_argument("--keep", action="store_true", help="keep the benchmark's data")

    def check_services(self) -> str:
        """The Redis broker's URL; raises CommandError unless on PostgreSQL and Redis."""
        from django.conf import settings
        from django.db import connection

        broker = str(settings.CELERY_BROKER_URL)
        if connection.vendor != "postgresql" or not settings.REDIS_URL:
            raise CommandError(
                "bench_signup measures the signup endpoint on PostgreSQL and Redis: set "
                "DATABASE_URL (postgres://...) and REDIS_URL (redis://...) and run it again."
            )
        if not broker.startswith(("redis://", "rediss://")):
            raise CommandError(
                f"bench_signup counts the queued confirmations in Redis, but the Celery "
                f"broker is {broker.split('://')[0]}://: leave CELERY_BROKER_URL unset "
                f"(REDIS_URL is then the broker) or point it at Redis."
            )
        return broker

    def handle(self, *args: object, **options: object) -> None:
        from lists.models import MailingList, SignupForm
        from mailpanel.lib import signing
        from mailpanel.models import User

        broker = self.check_services()
        tag = f"bench-signup-{os.getpid()}-{int(time.time())}"
        user = User.objects.create(username=tag, email=f"{tag}@bench.example")
        mailing_list = MailingList.objects.create(owner=user, name=tag, double_opt_in=True)
        form = SignupForm.objects.create(account=user, name=tag)
        form.lists.set([mailing_list])
        port = free_port()
        server = self.start_server(port, broker, tag, options)
        try:
            self.wait_ready(port, server)
            self.warm_up(port, f"/s/f/{form.uuid}/embed.json", options)
            stamp = signing.form_timestamp(str(form.uuid))
            server_cpu = server_cpu_seconds(server.pid)
            load = self.run_loadgen(port, f"/s/f/{form.uuid}/submit", stamp, options)
            if server_cpu is not None and load["requests"]:
                spent = server_cpu_seconds(server.pid) - server_cpu
                load["server_cpu_ms_per_request"] = round(spent * 1000 / load["requests"], 2)
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        try:
            accepted = load.pop("accepted_addresses")
            counts = self.count_lost(mailing_list, accepted, broker, tag)
        finally:
            drop_queue(broker, tag)
            if not options["keep"]:
                user.delete()
        result = {
            **load,
            "accepted": len(accepted),
            **counts,
            "database": "postgresql",
            "broker": broker.split("://")[0],
            "gunicorn_workers": options["workers"],
            "threads_per_worker": options["threads"],
            "clients": options["clients"],
        }
        self.stdout.write(json.dumps(result))

    def count_lost(
        self, mailing_list: object, accepted: list[str], broker: str, queue: str
    ) -> dict[str, int]:
        """in_database, confirmations_queued, not_in_database, not_queued and lost."""
        from lists.models import Subscription

        by_address = dict(
            Subscription.objects.filter(mailing_list=mailing_list).values_list(
                "subscriber__email", "id"
            )
        )
        queued = queued_confirmations(broker, queue)
        missing = [a for a in accepted if a not in by_address]
        unqueued = [a for a in accepted if a in by_address and by_address[a] not in queued]
        return {
            "in_database": len(accepted) - len(missing),
            "confirmations_queued": len(queued),
            "not_in_database": len(missing),
            "not_queued": len(unqueued),
            "lost": len(missing) + len(unqueued),
        }

    def start_server(self, port: int, broker: str, queue: str, options: dict) -> subprocess.Popen:
        from django.conf import settings

        env = {
            **os.environ,
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "CELERY_BROKER_URL": broker,
            QUEUE_VARIABLE: queue,
            # The benchmark only: no network DNS, and limits above the load.
            "SIGNUP_DNS_CHECK": "false",
            "SIGNUP_MIN_FILL_SECONDS": "0",
            "SIGNUP_RATE_PER_IP": "100000000/60",
            "SIGNUP_RATE_PER_FORM": "100000000/60",
            "SIGNUP_RATE_PER_ADDRESS": "100000000/60",
            "LOG_LEVEL": "WARNING",
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "lists.management.commands.bench_signup:benchmark_application()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(options["workers"]),
            "--worker-class",
            "gthread",
            "--threads",
            str(options["threads"]),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ]
        return subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603

    def wait_ready(self, port: int, server: subprocess.Popen) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("gunicorn exited before it was ready")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start within 30 seconds")

    def warm_up(self, port: int, path: str, options: dict) -> None:
        """Lets every worker import everything and open its connections before timing."""

        def fetch() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(5):
                conn.request("GET", path)
                conn.getresponse().read()
            conn.close()

        pool = [threading.Thread(target=fetch) for _ in range(int(options["clients"]))]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    def run_loadgen(self, port: int, path: str, stamp: str, options: dict) -> dict:
        with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
            subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "lists.management.commands.bench_signup",
                    "127.0.0.1",
                    str(port),
                    path,
                    stamp,
                    str(options["seconds"]),
                    str(options["clients"]),
                    out.name,
                ],
                cwd=ROOT,
                check=True,
            )
            return json.load(open(out.name))  # noqa: SIM115


if __name__ == "__main__":
    host, port, path, stamp, seconds, threads, out = sys.argv[1:8]
    result = run_load(host, int(port), path, stamp, float(seconds), int(threads))
    Path(out).write_text(json.dumps(result))
