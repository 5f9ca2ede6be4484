"""Bounce pages of the panel: per campaign, per list (with a chart and a CSV of each table),
lifting a subscriber's suppression, and the account's bounce rules.

Access goes through the owning app's helper: campaigns.access (owner only) and
lists.access (owner and delegates; viewers read). Not yours: 404.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bounces import reports, suppression
from bounces.forms import LiftForm, SuppressionPolicyForm
from bounces.models import BounceClass, BounceEvent, SuppressionPolicy
from campaigns.access import get_campaign
from lists.access import get_list_for_user
from lists.models import Subscriber
from stats import charts, exports

PAGE_SIZE = 50
EXPORT_TABLES = ("addresses", "classes", "reasons")


def _class_chart(summary: reports.Summary) -> SafeString | None:
    if not summary.total:
        return None
    return charts.bar_chart(
        "Bounces by class",
        [label for _, label, _ in summary.by_class],
        [charts.Series("Events", [count for _, _, count in summary.by_class])],
        height=200,
    )


def _report(
    request: HttpRequest,
    events: QuerySet[BounceEvent],
    export: tuple[str, uuid.UUID],
    context: dict[str, object],
) -> HttpResponse:
    """The page; ``export`` is the URL name and object of its CSV tables."""
    chosen = request.GET.get("class", "")
    chosen = chosen if chosen in BounceClass.values else ""
    page = Paginator(reports.listing(events, chosen), PAGE_SIZE).get_page(request.GET.get("page"))
    summary = reports.summarise(events)
    name, key = export
    exports_of = {table: reverse(name, args=[key, table]) for table in EXPORT_TABLES}
    if chosen:
        exports_of["addresses"] += f"?class={chosen}"
    context.update(
        summary=summary,
        class_chart=_class_chart(summary),
        page_obj=page,
        chosen_class=chosen,
        classes=BounceClass.choices,
        exports=exports_of,
    )
    return render(request, "bounces/bounce_report.html", context)


def _export(
    request: HttpRequest, events: QuerySet[BounceEvent], table: str, name: str, *, per_list: bool
) -> HttpResponse:
    if table == "addresses":
        rows = reports.listing_rows(
            events, request.GET.get("class", ""), request.user.tzinfo(), with_campaign=per_list
        )
    elif table == "classes":
        rows = reports.class_rows(reports.summarise(events))
    elif table == "reasons":
        rows = reports.reason_rows(reports.summarise(events))
    else:
        raise Http404("No such table")
    return exports.response(rows, f"{name}-bounces-{table}")


@login_required
def campaign_bounces(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = get_campaign(request, campaign_id)
    return _report(
        request,
        reports.for_campaign(campaign),
        ("bounces:campaign-export", campaign.uuid),
        {
            "title": f"Bounces of {campaign.name}",
            "back_url": reverse("campaigns:detail", args=[campaign.uuid]),
            "back_label": campaign.name,
            "show_campaign": False,
            "rules_url": reverse("bounces:rules"),  # campaigns are the account owner's
        },
    )


@login_required
def list_bounces(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, _role = get_list_for_user(request, list_uuid)
    return _report(
        request,
        reports.for_list(mailing_list),
        ("bounces:list-export", mailing_list.uuid),
        {
            "title": f"Bounces on {mailing_list.name}",
            "back_url": reverse("lists:detail", args=[mailing_list.uuid]),
            "back_label": mailing_list.name,
            "show_campaign": True,
            # A delegate's own rules do not apply to this list: only its owner gets the link.
            "rules_url": reverse("bounces:rules")
            if mailing_list.owner_id == request.user.pk
            else "",
        },
    )


@login_required
@require_GET
def campaign_bounces_export(
    request: HttpRequest, campaign_id: uuid.UUID, table: str
) -> HttpResponse:
    campaign = get_campaign(request, campaign_id)
    return _export(request, reports.for_campaign(campaign), table, campaign.name, per_list=False)


@login_required
@require_GET
def list_bounces_export(request: HttpRequest, list_uuid: uuid.UUID, table: str) -> HttpResponse:
    mailing_list, _role = get_list_for_user(request, list_uuid)
    return _export(request, reports.for_list(mailing_list), table, mailing_list.name, per_list=True)


@login_required
@require_POST
def subscriber_lift(request: HttpRequest, uuid: uuid.UUID) -> HttpResponse:
    subscriber = get_object_or_404(Subscriber.objects.visible_to(request.user), uuid=uuid)
    # The lift reaches every list of the account, so it is the account owner's to make.
    if subscriber.account_id != request.user.pk:
        raise PermissionDenied("Only the account owner may lift a suppression.")
    form = LiftForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the suppression is lifted: the note is required.")
    else:
        changed = suppression.lift(subscriber, actor=request.user, note=form.cleaned_data["note"])
        messages.success(request, f"Suppression lifted on {changed} list(s).")
    return redirect("lists:subscriber-detail", subscriber.uuid)


@login_required
@require_http_methods(["GET", "POST"])
def rules(request: HttpRequest) -> HttpResponse:
    """The bounce rules of the signed-in user's own account (there is no other to address)."""
    policy = SuppressionPolicy.for_account(request.user.pk)
    form = SuppressionPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your bounce rules were saved.")
        return redirect("bounces:rules")
    return render(request, "bounces/rules.html", {"form": form})
