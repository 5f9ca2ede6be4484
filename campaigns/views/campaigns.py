from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery, Sum
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
from sending.models import SendBatch


@dataclass(frozen=True)
class IndexRow:
    """One line of the campaign index: the audience size and how far sending got."""

    campaign: Campaign
    # Planned recipients once sending started; before, the count stored when the draft
    # was saved or scheduled (None: not counted since this was added).
    audience: int | None
    started: bool
    sent: int = 0
    failed: int = 0
    unknown: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown

    @property
    def percent(self) -> int:
        return min(100, 100 * self.done // self.audience) if self.audience else 0


def _index_row(campaign: Campaign) -> IndexRow:
    if campaign.started_at is None:
        return IndexRow(campaign, campaign.audience_size, started=False)
    # The stats rollup holds the outcomes (no COUNT over deliveries per row); the planned
    # batches hold the audience read when sending started, as the progress panel does.
    stats = getattr(campaign, "stats", None)
    sent, failed, unknown = (stats.sent, stats.failed, stats.unknown) if stats else (0, 0, 0)
    planned = max(campaign.planned_recipients or 0, stats.recipients if stats else 0)
    return IndexRow(campaign, max(planned, sent + failed + unknown), True, sent, failed, unknown)


def _planned_recipients() -> Subquery:
    # Retry batches have size 0: only the batches planned from the audience count.
    batches = SendBatch.objects.filter(campaign=OuterRef("pk"), size__gt=0).order_by()
    return Subquery(batches.values("campaign").annotate(n=Sum("size")).values("n"))


def _list_count() -> Subquery:
    links = Campaign.lists.through.objects.filter(campaign=OuterRef("pk")).order_by()
    return Subquery(links.values("campaign").annotate(n=Count("*")).values("n"))


@login_required
@require_GET
def campaign_index(request: HttpRequest) -> HttpResponse:
    # One query whatever the number of campaigns: the counts are subqueries and the
    # stats rollup is joined, so the page never counts an audience or deliveries per row.
    campaigns = (
        Campaign.objects.owned_by(request.user)
        .select_related("stats")
        .annotate(list_count=_list_count(), planned_recipients=_planned_recipients())
    )
    context = {
        "rows": [_index_row(c) for c in campaigns],
        "archive_url": preview.archive_url(request.user.pk),
    }
    return render(request, "campaigns/campaign_index.html", context)


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
        audience.remember_count(campaign)
        messages.success(request, "Campaign saved as a draft.")
        return redirect("campaigns:edit", campaign.uuid)
    return _render_form(request, form, None)


def _render_form(
    request: HttpRequest, form: CampaignForm, campaign: Campaign | None
) -> HttpResponse:
    context = {
        "form": form,
        "campaign": campaign,
        # Beside the "publish in archive" box: where published campaigns appear.
        "archive_url": preview.archive_url(request.user.pk),
    }
    return render(request, "campaigns/campaign_form.html", context)


def _edited_values(form: CampaignForm, campaign: Campaign) -> dict:
    """The columns an edit writes: the form's fields, never ``status`` (nor the frozen
    form, the lifecycle timestamps or the audience count, which other steps own)."""
    fields = (Campaign._meta.get_field(name) for name in form._meta.fields)
    values = {
        f.attname: getattr(campaign, f.attname) for f in fields if f.concrete and not f.many_to_many
    }
    values.pop("status", None)
    values["updated_at"] = timezone.now()
    return values


def _save_if_editable(form: CampaignForm) -> Campaign | None:
    """Writes the edit only if the campaign is still in the (editable) status it was
    loaded in; returns the campaign, or None when its status changed meanwhile.

    A conditional UPDATE with a row-count check, not a check followed by a save: a
    dispatcher that starts the campaign between the two would otherwise be undone. The
    same status, not just any editable one: after an edit a scheduled campaign is frozen
    again and a draft unfrozen, which is only right for the status the edit was made in.
    """
    campaign = form.save(commit=False)
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=campaign.status).update(
            **_edited_values(form, campaign)
        )
        if updated != 1:
            return None
        form.save_m2m()
    return campaign


@login_required
def campaign_edit(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    if not campaign.is_editable:
        messages.error(request, "This campaign has started sending; it can no longer be edited.")
        return redirect("campaigns:detail", campaign.uuid)
    old_format = campaign.body_format
    form = CampaignForm(request.POST or None, instance=campaign, account=request.user)
    if request.method == "POST" and form.is_valid():
        saved = _save_if_editable(form)
        if saved is None:
            campaign.refresh_from_db(fields=["status"])
            messages.error(
                request,
                f"The campaign became {campaign.get_status_display().lower()} meanwhile; "
                "your changes were not saved.",
            )
            return redirect("campaigns:detail", campaign.uuid)
        campaign = saved
        audience.remember_count(campaign)
        try:
            scheduling.edited(campaign)
        except MergeError as exc:
            messages.error(request, f"Saved, but it cannot be sent: {exc}")
        if campaign.body_format != old_format:
            messages.info(request, f"Switched the body to {campaign.get_body_format_display()}.")
        else:
            messages.success(request, "Saved.")
        return redirect("campaigns:edit", campaign.uuid)
    return _render_form(request, form, campaign)


@login_required
@require_GET
def campaign_detail(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = access.get_campaign(request, campaign_id)
    send_at_local = timezone.localtime(campaign.send_at) if campaign.send_at else None
    context = {
        "campaign": campaign,
        "recipient_count": _audience_size(campaign),
        "send_at_local": send_at_local,
        "schedule_form": ScheduleForm(initial={"when": "later"}),
        "test_form": TestSendForm(),
        "attachment_form": AttachmentForm(),
        "attachments": campaign.attachments.all(),
        "attachments_total": campaign.attachments.aggregate(total=Sum("size"))["total"] or 0,
        "time_zone": request.user.time_zone,
    }
    return render(request, "campaigns/campaign_detail.html", context)


def _audience_size(campaign: Campaign) -> int:
    """The number the detail page and the index agree on: the planned recipients once
    sending started (the audience as it was read then), else the audience counted now."""
    if campaign.started_at is not None:
        planned = SendBatch.objects.filter(campaign=campaign, size__gt=0).aggregate(n=Sum("size"))
        return planned["n"] or 0
    size = audience.count(campaign)
    if size != campaign.audience_size:
        # Subscribers came or went since the last save: the index shows this count too.
        audience.remember_count(campaign, size)
    return size


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
        audience.remember_count(campaign)
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
