"""Bounce pages of the panel: per campaign, per list, lifting a subscriber's suppression, and
the account's bounce rules.

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
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from bounces import reports, suppression
from bounces.forms import LiftForm, SuppressionPolicyForm
from bounces.models import BounceClass, BounceEvent, SuppressionPolicy
from campaigns.access import get_campaign
from lists.access import get_list_for_user
from lists.models import Subscriber

PAGE_SIZE = 50


def _report(
    request: HttpRequest, events: QuerySet[BounceEvent], context: dict[str, object]
) -> HttpResponse:
    chosen = request.GET.get("class", "")
    page = Paginator(reports.listing(events, chosen), PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        summary=reports.summarise(events),
        page_obj=page,
        chosen_class=chosen if chosen in BounceClass.values else "",
        classes=BounceClass.choices,
    )
    return render(request, "bounces/bounce_report.html", context)


@login_required
def campaign_bounces(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = get_campaign(request, campaign_id)
    return _report(
        request,
        reports.for_campaign(campaign),
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
