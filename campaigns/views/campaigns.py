from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from campaigns import access, attachments, audience, preview, scheduling
from campaigns.forms import AttachmentForm, CampaignForm, ScheduleForm, TestSendForm
from campaigns.merge import MergeError
from campaigns.models import Campaign, EmailTemplate
from campaigns.sandbox import framed_preview
from campaigns.tasks import send_test
from lists.models import MailingList, Segment, Subscriber


@login_required
@require_GET
def campaign_index(request: HttpRequest) -> HttpResponse:
    campaigns = (
        Campaign.objects.owned_by(request.user)
        .annotate(list_count=Count("lists", distinct=True))
        .prefetch_related("lists")
    )
    rows = [(c, sum(lst.confirmed_count for lst in c.lists.all())) for c in campaigns]
    return render(request, "campaigns/campaign_index.html", {"rows": rows})


def _default_template(account: object) -> EmailTemplate | None:
    from campaigns import designs

    designs.ensure_starting_templates(account)
    return EmailTemplate.objects.owned_by(account).order_by("id").first()


@login_required
def campaign_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    instance = Campaign(
        account=user,
        from_name=user.default_from_name,
        from_email=user.default_from_email,
        template=_default_template(user),
    )
    form = CampaignForm(request.POST or None, instance=instance, account=user)
    if request.method == "POST" and form.is_valid():
        campaign = form.save()
        messages.success(request, "Campaign saved as a draft.")
        return redirect("campaigns:edit", campaign.uuid)
    return render(request, "campaigns/campaign_form.html", {"form": form, "campaign": None})


@login_required
def campaign_edit(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    if not campaign.is_editable:
        messages.error(request, "This campaign has started sending; it can no longer be edited.")
        return redirect("campaigns:detail", campaign.uuid)
    old_format = campaign.body_format
    form = CampaignForm(request.POST or None, instance=campaign, account=request.user)
    if request.method == "POST" and form.is_valid():
        # The conditional update keeps a racing "start sending" from being overwritten.
        if not Campaign.objects.filter(pk=campaign.pk, status__in=["draft", "scheduled"]).exists():
            messages.error(request, "This campaign has started sending; it was not changed.")
            return redirect("campaigns:detail", campaign.uuid)
        campaign = form.save()
        try:
            scheduling.edited(campaign)
        except MergeError as exc:
            messages.error(request, f"Saved, but it cannot be sent: {exc}")
        if campaign.body_format != old_format:
            messages.info(request, f"Switched the body to {campaign.get_body_format_display()}.")
        else:
            messages.success(request, "Saved.")
        return redirect("campaigns:edit", campaign.uuid)
    return render(request, "campaigns/campaign_form.html", {"form": form, "campaign": campaign})


@login_required
@require_GET
def campaign_detail(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    send_at_local = timezone.localtime(campaign.send_at) if campaign.send_at else None
    context = {
        "campaign": campaign,
        "recipient_count": audience.count(campaign),
        "send_at_local": send_at_local,
        "schedule_form": ScheduleForm(initial={"when": "later"}),
        "test_form": TestSendForm(),
        "attachment_form": AttachmentForm(),
        "attachments": campaign.attachments.all(),
        "attachments_total": campaign.attachments.aggregate(total=Sum("size"))["total"] or 0,
        "time_zone": request.user.time_zone,
    }
    return render(request, "campaigns/campaign_detail.html", context)


@login_required
@require_GET
def recipient_count(request: HttpRequest) -> HttpResponse:
    """The live audience size for the lists and segment being chosen in the form (htmx)."""
    lists = MailingList.objects.owned_by(request.user).filter(
        id__in=[v for v in request.GET.getlist("lists") if v.isdigit()]
    )
    probe = Campaign(account=request.user)
    segment_id = request.GET.get("segment", "")
    if segment_id.isdigit():
        probe.segment = Segment.objects.filter(account=request.user, id=segment_id).first()
    count = audience.count_for(probe, lists)
    return render(request, "campaigns/_recipient_count.html", {"count": count})


def _preview_subscriber(request: HttpRequest, campaign: Campaign) -> Subscriber | None:
    email = request.GET.get("as", "").strip()
    if not email:
        return None
    return Subscriber.objects.filter(account=campaign.account).with_email(email).first()


@login_required
@require_GET
def campaign_preview(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    subscriber = _preview_subscriber(request, campaign)
    context: dict = {
        "campaign": campaign,
        "as": request.GET.get("as", ""),
        "subscriber": subscriber,
    }
    try:
        subject, html, text = preview.render(campaign, subscriber)
    except MergeError as exc:
        context["errors"] = exc.errors
    else:
        context.update(
            subject=subject, text=text, checklist=preview.checklist(campaign, subject, html)
        )
    query = f"?as={request.GET['as']}" if request.GET.get("as") else ""
    context["document_url"] = reverse("campaigns:preview-document", args=[campaign.uuid]) + query
    return render(request, "campaigns/campaign_preview.html", context)


@login_required
@require_GET
def campaign_preview_document(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    try:
        html = preview.render(campaign, _preview_subscriber(request, campaign))[1]
    except MergeError as exc:
        html = (
            "<p>This campaign cannot be merged:</p><ul>"
            + "".join(f"<li>{error}</li>" for error in map(_escape, exc.errors))
            + "</ul>"
        )
    return framed_preview(html)


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


@login_required
@require_POST
def campaign_test(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("addresses", []):
            messages.error(request, error)
        return redirect("campaigns:detail", campaign.uuid)
    send_test.delay_on_commit(campaign.pk, form.cleaned_data["addresses"])
    messages.success(request, f"Test queued for {len(form.cleaned_data['addresses'])} address(es).")
    return redirect("campaigns:detail", campaign.uuid)


@login_required
@require_POST
def attachment_add(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    form = AttachmentForm(request.POST, request.FILES)
    if not campaign.is_editable:
        messages.error(request, "This campaign can no longer be changed.")
    elif not form.is_valid():
        messages.error(request, "Choose a file to attach.")
    else:
        try:
            attachment = attachments.add(campaign, form.cleaned_data["file"])
        except attachments.AttachmentRefused as exc:
            messages.error(request, str(exc))
        else:
            scheduling.edited(campaign)
            messages.success(request, f"Attached {attachment.name}.")
    return redirect("campaigns:detail", campaign.uuid)


@login_required
@require_POST
def attachment_delete(
    request: HttpRequest, campaign_id: uuid.UUID, attachment_id: uuid.UUID
) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    attachment = access.get_attachment(request, campaign, attachment_id)
    if campaign.is_editable:
        attachments.remove(attachment)
        scheduling.edited(campaign)
        messages.success(request, "Attachment removed.")
    else:
        messages.error(request, "This campaign can no longer be changed.")
    return redirect("campaigns:detail", campaign.uuid)


@login_required
@require_POST
def campaign_schedule(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when to send.")
        return redirect("campaigns:detail", campaign.uuid)
    local = form.local_send_at()
    send_at = scheduling.local_to_utc(local, request.user.time_zone) if local else None
    if not campaign.lists.exists():
        messages.error(request, "Choose at least one list before scheduling.")
        return redirect("campaigns:detail", campaign.uuid)
    try:
        scheduling.schedule(campaign, send_at)
    except MergeError as exc:
        messages.error(request, f"It cannot be scheduled: {exc}")
    except scheduling.TransitionError:
        messages.error(request, "Only a draft can be scheduled.")
    else:
        messages.success(request, "Scheduled.")
    return redirect("campaigns:detail", campaign.uuid)


def _transition(action: str, done: str):  # noqa: ANN202
    @login_required
    @require_POST
    def view(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
        campaign = access.get_campaign(request, campaign_id)
        try:
            getattr(scheduling, action)(campaign)
        except scheduling.TransitionError:
            messages.error(
                request,
                f"The campaign is {campaign.get_status_display().lower()}; "
                f"it cannot be {done.lower()} now.",
            )
        else:
            messages.success(request, f"{done}.")
        return redirect("campaigns:detail", campaign.uuid)

    view.__name__ = f"campaign_{action}"
    return view


campaign_unschedule = _transition("unschedule", "Unscheduled")
campaign_pause = _transition("pause", "Paused")
campaign_resume = _transition("resume", "Resumed")
campaign_cancel = _transition("cancel", "Cancelled")


@login_required
@require_POST
def campaign_duplicate(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    copy = scheduling.duplicate(campaign)
    messages.success(request, "Duplicated: this is the new draft.")
    return redirect("campaigns:edit", copy.uuid)


@login_required
@require_POST
def campaign_delete(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    if campaign.status not in (
        Campaign.Status.DRAFT,
        Campaign.Status.CANCELLED,
        Campaign.Status.SENT,
    ):
        messages.error(request, "Unschedule or cancel the campaign before deleting it.")
        return redirect("campaigns:detail", campaign.uuid)
    campaign.delete()
    messages.success(request, "Campaign deleted.")
    return redirect("campaigns:index")
