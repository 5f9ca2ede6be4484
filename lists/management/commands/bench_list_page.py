"""Times the list page of a big throw-away list through the Django test client.

    python manage.py bench_list_page --subscribers 1000000

Creates an account and a list of N subscribers (on Postgres with INSERT ... SELECT
generate_series, so a million rows take seconds), opens the list page several times for
each kind of view (unfiltered, by status, search, custom field, email sort, a deep page),
deletes everything it made, and prints the medians in milliseconds as the last line.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from lists import subscriptions
from lists.models import MailingList, Subscriber, Subscription

# One status per row, by id: about 90% confirmed, the rest spread like a real list.
STATUS_SQL = """
    CASE WHEN g %% 200 = 0 THEN 'complained' WHEN g %% 67 = 0 THEN 'bounced'
         WHEN g %% 20 = 0 THEN 'unsubscribed' WHEN g %% 33 = 0 THEN 'pending'
         ELSE 'confirmed' END
"""
PLANS = ["gold", "silver", "bronze", "free"]


class Command(BaseCommand):
    help = "Times the list page of a throw-away list of N subscribers (median ms per view)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscribers", type=int, default=1_000_000)
        parser.add_argument("--runs", type=int, default=7)
        parser.add_argument(
            "--keep", action="store_true", help="Leave the list in place (to EXPLAIN queries)."
        )

    def handle(self, *args: object, subscribers: int, runs: int, **options: object) -> None:
        if subscribers < 100:
            raise CommandError("--subscribers must be at least 100")
        self.keep = bool(options.get("keep"))
        self._static_files_collected()
        with self._throwaway_list(subscribers) as mailing_list:
            results = self._measure(mailing_list, runs)
        results.update(subscribers=subscribers, runs=runs, database=connection.vendor)
        self.stdout.write(json.dumps(results))

    def _static_files_collected(self) -> None:
        # With DEBUG off the pages name their CSS and scripts through collectstatic's
        # manifest, as in production; an installation that never ran it gets it run here.
        try:
            staticfiles_storage.url("css/mailpanel.css")
        except ValueError:
            self.stdout.write("collecting static files (production storage needs them)")
            call_command("collectstatic", interactive=False, verbosity=0)

    @contextmanager
    def _throwaway_list(self, n: int) -> Iterator[MailingList]:
        user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:12]}")
        mailing_list = MailingList.objects.create(owner=user, name="Benchmark list")
        try:
            started = time.monotonic()
            self._fill(mailing_list, n)
            subscriptions.recount([mailing_list.id])
            mailing_list.refresh_from_db()
            self.stdout.write(f"created {n} subscribers in {time.monotonic() - started:.1f} s")
            yield mailing_list
        finally:
            if self.keep:
                self.stdout.write(f"kept list {mailing_list.uuid} (id {mailing_list.id})")
            else:
                self._clean(mailing_list, user)

    def _fill(self, mailing_list: MailingList, n: int) -> None:
        if connection.vendor != "postgresql":
            self._fill_slowly(mailing_list, n)
            return
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO lists_subscriber
                    (uuid, account_id, email, domain, name, fields, consent, created_at, updated_at)
                SELECT gen_random_uuid(), %s, 'reader' || g || '@example' || (g %% 50) || '.org',
                       'example' || (g %% 50) || '.org', 'Name ' || g,
                       jsonb_build_object(
                           'plan', (ARRAY['gold', 'silver', 'bronze', 'free'])[g %% 4 + 1],
                           'n', g %% 100),
                       '{}'::jsonb, now(), now()
                FROM generate_series(1, %s) AS g
                """,
                [mailing_list.owner_id, n],
            )
            cursor.execute(
                f"""
                INSERT INTO lists_subscription
                    (mailing_list_id, subscriber_id, status, source, created_at,
                     status_changed_at, unsubscribe_reason)
                SELECT %s, s.id, {STATUS_SQL}, 'import', now(), now(), ''
                FROM (SELECT id, row_number() OVER (ORDER BY id) AS g
                      FROM lists_subscriber WHERE account_id = %s) AS s
                """,  # noqa: S608 (STATUS_SQL is a constant)
                [mailing_list.id, mailing_list.owner_id],
            )
        # As autovacuum would soon: fresh statistics, and no dead index entries from an
        # earlier run for the planner to step over.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE lists_subscriber")
            cursor.execute("VACUUM ANALYZE lists_subscription")

    def _fill_slowly(self, mailing_list: MailingList, n: int) -> None:
        statuses = ["complained", "bounced", "unsubscribed", "pending"]
        for start in range(1, n + 1, 5000):
            batch = range(start, min(n, start + 4999) + 1)
            people = Subscriber.objects.bulk_create(
                Subscriber(
                    account_id=mailing_list.owner_id,
                    email=f"reader{g}@example{g % 50}.org",
                    domain=f"example{g % 50}.org",
                    name=f"Name {g}",
                    fields={"plan": PLANS[g % 4], "n": g % 100},
                )
                for g in batch
            )
            Subscription.objects.bulk_create(
                Subscription(
                    mailing_list=mailing_list,
                    subscriber=person,
                    status=next(
                        (s for s, m in zip(statuses, (200, 67, 20, 33), strict=True) if g % m == 0),
                        "confirmed",
                    ),
                    source="import",
                )
                for g, person in zip(batch, people, strict=True)
            )

    def _clean(self, mailing_list: MailingList, user: object) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM lists_subscription WHERE mailing_list_id = %s", [mailing_list.id]
            )
            cursor.execute("DELETE FROM lists_subscriber WHERE account_id = %s", [user.pk])
            # Raw deletes: the bench made nothing else that points at the list or the user.
            cursor.execute("DELETE FROM lists_mailinglist WHERE id = %s", [mailing_list.id])
            cursor.execute(f"DELETE FROM {user._meta.db_table} WHERE id = %s", [user.pk])  # noqa: S608

    def _measure(self, mailing_list: MailingList, runs: int) -> dict[str, object]:
        client = Client(secure=True)
        client.force_login(mailing_list.owner)
        url = reverse("lists:detail", args=[mailing_list.uuid])
        middle = (
            Subscription.objects.filter(mailing_list=mailing_list)
            .order_by("subscriber_id")
            .values_list("subscriber_id", flat=True)[mailing_list.total_count // 2]
        )
        middle_email = (
            Subscriber.objects.filter(id=middle).values_list("email", flat=True).get().lower()
        )
        views = {
            "unfiltered_ms": {},
            "status_confirmed_ms": {"status": "confirmed"},
            "status_complained_ms": {"status": "complained"},
            "search_email_ms": {"q": "reader12345"},
            "search_name_ms": {"q": "name 4321"},
            # Substring (pg_trgm): rare, and common (one address in 50 is at example7.org).
            "search_substring_ms": {"q": "eader98765"},
            "search_substring_common_ms": {"q": "example7."},
            "search_domain_ms": {"q": "@example7.org"},
            "field_ms": {"field": "plan", "value": "gold"},
            "field_and_status_ms": {"field": "plan", "value": "silver", "status": "pending"},
            "sort_email_ms": {"sort": "email"},
            "deep_page_ms": {"after": str(middle)},
            "deep_page_status_ms": {"after": str(middle), "status": "unsubscribed"},
            "deep_page_field_ms": {"after": str(middle), "field": "plan", "value": "gold"},
            "deep_page_email_sort_ms": {"sort": "email", "after": f"{middle}:{middle_email}"},
        }
        results: dict[str, object] = {}
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            for name, params in views.items():
                timings = []
                for run in range(runs + 1):
                    started = time.perf_counter()
                    response = client.get(url, params)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise CommandError(f"{name}: HTTP {response.status_code}")
                    if run:  # the first run warms caches and is not counted
                        timings.append(elapsed)
                results[name] = round(statistics.median(timings), 1)
                self.stdout.write(f"{name}: {results[name]} ms {params}")
        client.logout()
        return results
