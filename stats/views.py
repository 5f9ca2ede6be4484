"""The statistics pages: account overview, campaign, list, subscriber timeline, failure
reports, and a CSV of every table. Objects come through stats.access (404 for anyone
else's); the numbers come from stats.dashboards, which reads the rollups."""

from __future__ import annotations

import datetime
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bounces import reports as bounce_reports
from campaigns.merge import MergeError
from campaigns.sandbox import framed_preview
from lists.models import MailingList
from stats import access, charts, dashboards, exports, linkmap, reports, timeline
from stats.forms import FailureReportForm

PERIODS = (30, 90, 365)


def _days(request: HttpRequest) -> int:
    value = request.GET.get("days", "")
    return int(value) if value.isdigit() and int(value) in PERIODS else PERIODS[0]


def _day_label(day: datetime.date) -> str:
    return day.strftime("%d %b")


# --- Account overview ------------------------------------------------------------------------


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    lists = MailingList.objects.visible_to(request.user).order_by("name", "id")
    sizes = dashboards.account_sizes(lists.filter(owner=request.user), days)
    chart = None
    if sizes:
        chart = charts.line_chart(
            f"Subscribers on your lists, last {days} days",
            [_day_label(day) for day, _ in sizes],
            [charts.Series("Subscribers", [size for _, size in sizes])],
        )
    context = {
        "days": days,
        "periods": PERIODS,
        "campaigns": dashboards.recent_campaigns(request.user),
        "lists": dashboards.lists_growth(lists, days),
        "size_chart": chart,
    }
    return render(request, "stats/overview.html", context)


@login_required
@require_GET
def index_export(request: HttpRequest, table: str) -> HttpResponse:
    tz = request.user.tzinfo()
    if table == "campaigns":
        return exports.response(exports.overview_campaigns(request.user, tz), "campaigns")
    if table == "lists":
        lists = MailingList.objects.visible_to(request.user).order_by("name", "id")
        return exports.response(exports.overview_lists(lists, _days(request)), "list-growth")
    raise Http404("No such table")


# --- A campaign ---------------------------------------------------------------------------


def _hourly_chart(series: dashboards.HourlySeries) -> object:
    labels = [f"+{i}h" for i in range(len(series.hours))]
    return charts.line_chart(
        "Opens and clicks by people, first 48 hours",
        labels,
        [
            charts.Series("Opens", [r.human_opens for r in series.rows]),
            charts.Series("Clicks", [r.human_clicks for r in series.rows]),
            charts.Series("Machine opens", [r.machine_opens for r in series.rows]),
        ],
    )


@login_required
@require_GET
def campaign(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    """The key numbers page: rollups only, a fixed number of queries at any size."""
    found = access.get_campaign(request, campaign_id)
    hourly = dashboards.first_hours(found)
    context = {
        "campaign": found,
        "numbers": dashboards.key_numbers(found),
        "hourly": hourly,
        "hourly_chart": _hourly_chart(hourly) if hourly.rows else None,
        "links": dashboards.link_rows(found),
        "domains": dashboards.domain_rows(found),
    }
    return render(request, "stats/campaign.html", context)


@login_required
@require_GET
def campaign_links(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    found = access.get_campaign(request, campaign_id)
    context = {"campaign": found, "links": dashboards.link_rows(found)}
    return render(request, "stats/campaign_links.html", context)


@login_required
@require_GET
def campaign_links_document(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    """The mail with click badges, for the sandboxed iframe (no scripts, no origin)."""
    found = access.get_campaign(request, campaign_id)
    try:
        html = linkmap.render(found, dashboards.link_rows(found))
    except MergeError:
        html = "<p>This campaign's frozen content cannot be shown.</p>"
    return framed_preview(html)


def _bounce_class_chart(summary: bounce_reports.Summary) -> object:
    return charts.bar_chart(
        "Bounces by class",
        [label for _, label, _ in summary.by_class],
        [charts.Series("Bounces", [count for _, _, count in summary.by_class])],
        height=200,
    )


@login_required
@require_GET
def campaign_bounces(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    found = access.get_campaign(request, campaign_id)
    unsubscribes = dashboards.unsubscribes(found)
    summary = bounce_reports.summarise(bounce_reports.for_campaign(found))
    context = {
        "campaign": found,
        "numbers": dashboards.key_numbers(found),
        "summary": summary,
        "class_chart": _bounce_class_chart(summary) if summary.total else None,
        "unsubscribes": unsubscribes,
        "reasons": dashboards.reason_counts(unsubscribes),
    }
    return render(request, "stats/campaign_bounces.html", context)


@login_required
@require_GET
def campaign_export(request: HttpRequest, campaign_id: uuid.UUID, table: str) -> HttpResponse:
    found = access.get_campaign(request, campaign_id)
    rows = exports.CAMPAIGN_TABLES.get(table)
    if rows is None:
        raise Http404("No such table")
    return exports.response(rows(found, request.user.tzinfo()), f"{found.name}-{table}")


# --- A list --------------------------------------------------------------------------------


def _growth_charts(rows: list) -> tuple[object, object]:
    labels = [_day_label(row.day) for row in rows]
    size = charts.line_chart(
        "List size per day", labels, [charts.Series("Size", [r.size for r in rows])]
    )
    flows = charts.bar_chart(
        "Joined and left per day",
        labels,
        [
            charts.Series("Confirmed", [r.confirmed for r in rows]),
            charts.Series("Unsubscribed", [r.unsubscribed for r in rows]),
            charts.Series("Bounced", [r.bounced + r.complained for r in rows]),
        ],
    )
    return size, flows


def _short(name: str, length: int = 18) -> str:
    return name if len(name) <= length else name[: length - 1] + "…"


def _engagement_chart(rows: list[dashboards.EngagementRow]) -> object:
    oldest_first = list(reversed(rows))
    return charts.bar_chart(
        "Opened and clicked by people, per cent of those sent to",
        [_short(row.campaign.name) for row in oldest_first],
        [
            charts.Series("Opened", [round(100 * r.numbers.open_rate, 1) for r in oldest_first]),
            charts.Series("Clicked", [round(100 * r.numbers.click_rate, 1) for r in oldest_first]),
        ],
    )


@login_required
@require_GET
def list_stats(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list(request, list_uuid)
    days = _days(request)
    rows = dashboards.list_days(mailing_list, days)
    size_chart, flow_chart = _growth_charts(rows)
    # Campaigns are the owner's: a delegate sees the list's numbers, not the campaigns.
    engagement = dashboards.list_engagement(mailing_list) if role == "owner" else None
    context = {
        "mailing_list": mailing_list,
        "role": role,
        "days": days,
        "periods": PERIODS,
        "rows": list(reversed(rows)),
        "growth": dashboards.growth_of(rows),
        "has_data": any(r.size or r.subscribed or r.unsubscribed for r in rows),
        "size_chart": size_chart,
        "flow_chart": flow_chart,
        "engagement": engagement,
        "engagement_chart": _engagement_chart(engagement) if engagement else None,
    }
    return render(request, "stats/list.html", context)


@login_required
@require_GET
def list_export(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, _ = access.get_list(request, list_uuid)
    rows = exports.list_daily(mailing_list, request.user.tzinfo())
    return exports.response(rows, f"{mailing_list.name}-daily")


@login_required
@require_GET
def list_engagement_export(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list(request, list_uuid)
    if role != "owner":
        # The page shows delegates no campaigns (they may reach lists the delegate cannot).
        raise Http404("No such table")
    rows = exports.list_engagement(mailing_list, request.user.tzinfo())
    return exports.response(rows, f"{mailing_list.name}-engagement")


# --- A subscriber ------------------------------------------------------------------------------


@login_required
@require_GET
def subscriber_timeline(request: HttpRequest, subscriber_id: uuid.UUID) -> HttpResponse:
    subscriber, granted = access.get_subscriber(request, subscriber_id)
    events = timeline.events_of(subscriber, granted)
    page = timeline.page(events, request.GET, request.path)
    context = {
        "subscriber": subscriber,
        "page_obj": page,
        "rows": timeline.describe(page.rows, subscriber.account_id),
    }
    return render(request, "stats/subscriber_timeline.html", context)


@login_required
@require_GET
def subscriber_export(request: HttpRequest, subscriber_id: uuid.UUID) -> HttpResponse:
    subscriber, granted = access.get_subscriber(request, subscriber_id)
    rows = exports.subscriber_timeline(
        timeline.events_of(subscriber, granted), request.user.tzinfo()
    )
    return exports.response(rows, f"timeline-{subscriber.email}")


# --- Failure reports ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def report_index(request: HttpRequest) -> HttpResponse:
    tz = request.user.tzinfo()
    operator = request.user.is_staff
    form = FailureReportForm(
        request.POST or None, operator=operator, initial=FailureReportForm.initial_for(tz)
    )
    if request.method == "POST" and form.is_valid():
        start, end = form.period(tz)
        everything = operator and form.cleaned_data.get("everything")
        report = reports.request_report(
            account=None if everything else request.user,
            requested_by=request.user,
            start=start,
            end=end,
        )
        messages.success(request, "The report is being counted; this page follows its progress.")
        return redirect("stats:report-detail", report.uuid)
    recent = reports.visible_reports(request.user).select_related("account")[:20]
    return render(request, "stats/report_index.html", {"form": form, "reports": recent})


@login_required
@require_GET
def report_detail(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    report = access.get_report(request, report_id)
    return render(request, "stats/report_detail.html", _report_context(report))


@login_required
@require_GET
def report_progress(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    """The progress box alone, polled by htmx while the report runs.

    A report that stopped moving is dealt with here too (re-queued once, then failed), so
    its reader sees it end even when beat is not running.
    """
    report = access.get_report(request, report_id)
    if reports.is_overdue(report):
        reports.enforce_deadline(report.id)
        report.refresh_from_db()
    return render(request, "stats/_report_progress.html", _report_context(report))


@login_required
@require_POST
def report_rerun(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    report = access.get_report(request, report_id)
    try:
        again = reports.run_again(report, requested_by=request.user)
    except reports.ReportRefused as refused:
        messages.error(request, str(refused))
        return redirect("stats:report-detail", report.uuid)
    messages.success(request, "The report is being counted again; this page follows it.")
    return redirect("stats:report-detail", again.uuid)


def _report_context(report: object) -> dict:
    done = report.status == report.Status.DONE
    tables = [
        (name, title, reports.rows(report, name) if done else [])
        for name, title in (
            ("domains", "Receiving domains"),
            ("relays", "Sending relays"),
            ("subscribers", "Addresses"),
        )
    ]
    percent = int(100 * report.parts_done / report.parts_total) if report.parts_total else 100
    return {
        "report": report,
        "tables": tables,
        "percent": percent,
        "progress_url": reverse("stats:report-progress", args=[report.uuid]),
    }


@login_required
@require_GET
def report_export(request: HttpRequest, report_id: uuid.UUID, dimension: str) -> HttpResponse:
    report = access.get_report(request, report_id)
    if dimension not in reports.DIMENSIONS or report.status != report.Status.DONE:
        raise Http404("No such table")
    return exports.response(exports.failure_table(report, dimension), f"failures-{dimension}")
