"""A realistic campaign for the merge benchmark (``manage.py bench_merge``)."""

from __future__ import annotations

import gc
import os
import statistics
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from campaigns import designs, freezing, merge
from campaigns.models import Attachment, Campaign, EmailTemplate
from lists.models import MailingList
from sending.models import SendingDomain

PARAGRAPH = (
    '<p>Dear {{ subscriber.name|default:"friend" }}, this month in {{ subscriber.fields.city'
    '|default:"your city" }} we have news about <a href="https://example.com/news/{n}">story '
    "number {n}</a>, with more detail than fits here, a few words about the weather, and an "
    "invitation to our <strong>open house</strong> on the first Saturday of the month.</p>\n"
)
STATIC_PARAGRAPH = (
    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    'incididunt ut labore et dolore magna aliqua. Read <a href="https://example.org/item/{n}">'
    'item {n}</a> or <a href="https://example.org/more/{n}">more</a>.</p>\n'
)


LOREM = (
    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud.</p>\n"
)


def small_body() -> str:
    """About 10 KB with the template: 6 merge tags in all, 20 tracked links."""
    parts = ['<h1>Hello {{ subscriber.name|default:"friend" }}</h1>\n']
    parts.append("<p>You are reading {{ list.name }} as {{ subscriber.email }}.</p>\n")
    for n in range(1, 19):
        parts.append(LOREM + (LOREM if n % 3 == 0 else ""))
        parts.append(
            f'<p>Section {n}: <a href="https://example.com/section/{n}">read section {n}</a>, '
            "with a short summary of what is inside and why it matters to you.</p>\n"
        )
    parts.append('<p><a href="https://example.com/shop">Visit the shop</a></p>')
    parts.append(
        '<p><a href="https://example.com/events">Events</a> in '
        '{{ subscriber.fields.city|default:"your town" }}.</p>'
    )
    return "".join(parts)


def large_body() -> str:
    """About 100 KB with 50 distinct tracked links."""
    parts = []
    n = 0
    while sum(len(p) for p in parts) < 100_000:
        n += 1
        link = n % 25
        parts.append(STATIC_PARAGRAPH.replace("{n}", str(link)).replace("/more/", "/x/"))
    return "".join(parts)


def build(account: object, mailing_list: MailingList, body: str, attachment_mb: int) -> Campaign:
    template = EmailTemplate.objects.create(
        account=account, name="Newsletter", html=designs.starting_html("newsletter")
    )
    campaign = Campaign.objects.create(
        account=account,
        name="Benchmark",
        subject='News for {{ subscriber.name|default:"you" }}',
        preheader="What happened this month",
        from_name="Bench",
        from_email="bench@example.com",
        template=template,
        body=body,
        body_format=Campaign.BodyFormat.HTML,
    )
    campaign.lists.add(mailing_list)
    if attachment_mb:
        data = os.urandom(attachment_mb * 1024 * 1024)
        attachment = Attachment(
            campaign=campaign, name="report.pdf", size=len(data), content_type="application/pdf"
        )
        attachment.file.save("report.pdf", ContentFile(data), save=False)
        attachment.save()
    return campaign


def timed_freeze(campaign: Campaign) -> float:
    started = time.perf_counter()
    freezing.freeze(campaign)
    return time.perf_counter() - started


def recipients(count: int, list_id: int, list_name: str) -> list[dict]:
    cities = ["Copenhagen", "Aarhus", "", "Odense", "Malmö <b>&"]
    return [
        {
            "subscriber": {
                "id": 1000 + i,
                "name": f"Reader {i}" if i % 7 else "",
                "email": f"reader{i}@example.org",
                "fields": {"city": cities[i % len(cities)]},
            },
            "list": {"id": list_id, "name": list_name},
        }
        for i in range(count)
    ]


def time_merges(frozen: merge.FrozenCampaign, people: list[dict]) -> tuple[list[int], int]:
    """Nanoseconds per merge, and in all, with the collector off (it would add pauses)."""
    timings = []
    clock = time.perf_counter_ns
    do_merge = merge.merge
    gc.disable()
    try:
        total_started = clock()
        for recipient in people:
            started = clock()
            do_merge(frozen, recipient)
            timings.append(clock() - started)
        total = clock() - total_started
    finally:
        gc.enable()
    return timings, total


def _us(nanoseconds: float) -> float:
    return round(nanoseconds / 1000, 2)


def run(count: int) -> dict:
    """Freezes a 10 KB and a 100 KB campaign (50 links), each with a 5 MB attachment,
    and merges both for ``count`` recipients. ``median_us_per_recipient`` is the 10 KB
    one (a realistic newsletter); ``freeze_seconds`` the 100 KB one."""
    user = get_user_model().objects.create(
        username=f"bench-{uuid.uuid4().hex[:12]}",
        postal_address="Bench Ltd\nMain Street 1\n1000 Copenhagen\nDenmark",
    )
    try:
        # Production settings freeze only campaigns from a verified sending domain; the
        # merge needs no DKIM key, so this one has none.
        SendingDomain.objects.create(
            account=user, domain="example.com", verified_at=timezone.now(),
            private_key_encrypted="",
        )  # fmt: skip
        mailing_list = MailingList.objects.create(owner=user, name="Bench weekly")
        small = build(user, mailing_list, small_body(), attachment_mb=5)
        large = build(user, mailing_list, large_body(), attachment_mb=5)
        small_seconds = timed_freeze(small)
        large_seconds = timed_freeze(large)
        small.refresh_from_db()
        large.refresh_from_db()
        frozen = merge.load_frozen(small)
        frozen_large = merge.load_frozen(large)
        people = recipients(count, mailing_list.id, mailing_list.name)
        timings, total = time_merges(frozen, people)
        timings_large, _total = time_merges(frozen_large, people)
        sample_subject, sample_html, sample_text = merge.merge(frozen, people[1])
        return {
            "html_bytes": len(small.frozen_html),
            "html_bytes_100kb": len(large.frozen_html),
            "merged_html_bytes": len(sample_html.encode()),
            "text_bytes": len(sample_text.encode()),
            "links": len(frozen.links),
            "fast_path": frozen.html.template is None,
            "freeze_seconds_10kb_5mb": round(small_seconds, 4),
            "freeze_html_bytes_large": len(large.body),
            "freeze_links_large": large.links.count(),
            "recipients": count,
            "median_us_per_recipient": _us(statistics.median(timings)),
            "p99_us_per_recipient": _us(sorted(timings)[int(len(timings) * 0.99) - 1]),
            "mean_us_per_recipient": _us(total / count),
            "median_us_per_recipient_100kb": _us(statistics.median(timings_large)),
            "p99_us_per_recipient_100kb": _us(
                sorted(timings_large)[int(len(timings_large) * 0.99) - 1]
            ),
            "freeze_seconds": round(large_seconds, 4),
        }
    finally:
        for attachment in Attachment.objects.filter(campaign__account=user):
            attachment.file.delete(save=False)
        user.delete()
