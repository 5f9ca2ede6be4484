"""List pages: index, create/edit/delete, the subscriber table, delegation, bulk actions.

Every view fetches its list through lists.access.get_list_for_user.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lists import access, bulk, filters
from lists.forms import BulkActionForm, GrantForm, MailingListForm, RevokeForm
from lists.models import (
    BulkJob,
    CustomField,
    ExportJob,
    ImportJob,
    ListRole,
    MailingList,
    Subscription,
)

ACTIVE_JOB_STATUSES = (BulkJob.Status.QUEUED, BulkJob.Status.RUNNING)
JobModel = BulkJob | ExportJob | ImportJob


@login_required
def list_index(request: HttpRequest) -> HttpResponse:
    mailing_lists = list(
        access.with_roles(MailingList.objects.visible_to(request.user), request.user)
        .select_related("owner")
        .order_by("name", "id")
    )
    for mailing_list in mailing_lists:
        mailing_list.role = access.role_from_annotation(mailing_list, request.user)
    return render(request, "lists/list_index.html", {"mailing_lists": mailing_lists})


@login_required
def list_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    initial = {"from_name": user.default_from_name, "from_email": user.default_from_email}
    form = MailingListForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        form.instance.owner = user
        mailing_list = form.save()
        messages.success(request, f"Created the list {mailing_list.name}.")
        return redirect("lists:detail", list_uuid=mailing_list.uuid)
    return render(request, "lists/list_form.html", {"form": form, "mailing_list": None})


@login_required
def list_edit(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid, write=True)
    form = MailingListForm(request.POST or None, instance=mailing_list)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved the list's settings.")
        return redirect("lists:detail", list_uuid=mailing_list.uuid)
    return render(
        request, "lists/list_form.html", {"form": form, "mailing_list": mailing_list, "role": role}
    )


@login_required
def list_delete(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid, owner_only=True)
    if request.method == "POST":
        name = mailing_list.name
        bulk.delete_list(mailing_list)
        messages.success(request, f"Deleted the list {name}. Its subscribers stay in your account.")
        return redirect("lists:index")
    return render(request, "lists/list_confirm_delete.html", {"mailing_list": mailing_list})


@login_required
def list_detail(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid)
    flt = filters.parse_filter(mailing_list, request.GET)
    page = filters.keyset_page(mailing_list, flt, request.GET, request.path)
    can_edit = access.can_edit(role)
    context = {
        "mailing_list": mailing_list,
        "role": role,
        "can_edit": can_edit,
        "filter": flt,
        "page": page,
        "statuses": Subscription.Status.choices,
        "sorts": filters.SORTS.items(),
        "custom_fields": CustomField.objects.filter(account_id=mailing_list.owner_id),
        "import_jobs": _jobs(ImportJob, request, mailing_list)[:5],
        **_recent_jobs(request, mailing_list),
        "matching_count": _known_count(mailing_list, flt),
        # The export covers what the page shows: the same filter, in the same order.
        "filter_params": flt.params(),
        "export_jobs": _jobs(ExportJob, request, mailing_list)[:3],
    }
    if can_edit:
        context["bulk_form"] = _bulk_form(request, mailing_list, role)
    return render(request, "lists/list_detail.html", context)


def _bulk_form(request: HttpRequest, mailing_list: MailingList, role: str) -> BulkActionForm:
    """The bulk action form, offering a manager only the actions bulk_action allows them."""
    form = BulkActionForm(targets=bulk.target_lists_for(request.user, mailing_list))
    if role != access.OWNER:
        action = form.fields["action"]
        action.choices = [c for c in action.choices if c[0] not in bulk.ACCOUNT_WIDE]
    return form


def _known_count(mailing_list: MailingList, flt: filters.ListFilter) -> int | None:
    """How many rows the filter matches, when the count columns tell it (no COUNT(*))."""
    if flt.q or flt.field:
        return None
    if flt.status:
        return getattr(mailing_list, f"{flt.status}_count")
    return mailing_list.total_count


def _jobs(model: type[JobModel], request: HttpRequest, mailing_list: MailingList) -> QuerySet:
    """The list's jobs of a kind, through the model's visible_to like every panel query."""
    return model.objects.visible_to(request.user).filter(mailing_list=mailing_list)


def _recent_jobs(request: HttpRequest, mailing_list: MailingList) -> dict[str, object]:
    jobs = list(_jobs(BulkJob, request, mailing_list).select_related("target_list")[:3])
    return {
        "bulk_jobs": jobs,
        "bulk_jobs_active": any(job.status in ACTIVE_JOB_STATUSES for job in jobs),
    }


@login_required
def bulk_jobs(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    """The bulk job progress partial, polled by htmx while a job is running."""
    mailing_list, role = access.get_list_for_user(request, list_uuid)
    return render(
        request,
        "lists/bulk_jobs.html",
        {"mailing_list": mailing_list, **_recent_jobs(request, mailing_list)},
    )


@login_required
@require_POST
def bulk_action(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid, write=True)
    if request.POST.get("action") in bulk.ACCOUNT_WIDE and role != access.OWNER:
        # As on the subscriber page: a manager's rights end at the list's edge.
        raise PermissionDenied("Only the list's owner may delete or blocklist subscribers.")
    flt = filters.parse_filter(mailing_list, request.POST)
    back = _detail_url(mailing_list, flt)
    target_uuid = request.POST.get("target", "").strip()
    target = None
    if target_uuid:
        # A list the user may not edit (or of another account) is a 404, like any other.
        target = get_object_or_404(
            bulk.target_lists_for(request.user, mailing_list), uuid=_uuid_or_404(target_uuid)
        )
    form = BulkActionForm(request.POST, targets=bulk.target_lists_for(request.user, mailing_list))
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return redirect(back)
    data = form.cleaned_data
    try:
        if data["scope"] == "selected" and len(data["ids"]) <= bulk.INLINE_LIMIT:
            changed = bulk.apply(
                data["action"], mailing_list, data["ids"], target=target, actor=request.user
            )
            label = BulkJob.Action(data["action"]).label
            messages.success(request, f"{label}: done for {changed} subscriber(s).")
        else:
            with transaction.atomic():
                bulk.create_job(
                    data["action"],
                    mailing_list,
                    actor=request.user,
                    target=target,
                    subscriber_ids=data["ids"] if data["scope"] == "selected" else None,
                    filter_params=flt.params(),
                )
            messages.success(request, "The bulk action is running; progress shows below.")
    except bulk.BulkError as exc:
        messages.error(request, str(exc))
    return redirect(back)


def _uuid_or_404(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise Http404("No such list") from exc


def _detail_url(mailing_list: MailingList, flt: filters.ListFilter) -> str:
    url = reverse("lists:detail", args=[mailing_list.uuid])
    params = flt.params()
    return f"{url}?{urlencode(params)}" if params else url


@login_required
def list_delegation(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid, owner_only=True)
    form = GrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = access.find_user(form.cleaned_data["user"])
            access.grant(mailing_list, user, form.cleaned_data["role"], granted_by=request.user)
        except access.DelegationError as exc:
            form.add_error("user", str(exc))
        else:
            messages.success(request, f"{user} is now {form.cleaned_data['role']} of this list.")
            return redirect("lists:delegation", list_uuid=mailing_list.uuid)
    roles = ListRole.objects.filter(mailing_list=mailing_list).select_related("user")
    return render(
        request,
        "lists/list_delegation.html",
        {
            "mailing_list": mailing_list,
            "form": form,
            "roles": roles,
            "role_choices": ListRole.Role.choices,
        },
    )


@login_required
@require_POST
def list_revoke(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    mailing_list, role = access.get_list_for_user(request, list_uuid, owner_only=True)
    form = RevokeForm(request.POST)
    if form.is_valid() and access.revoke(mailing_list, form.cleaned_data["role_id"]):
        messages.success(request, "Revoked.")
    return redirect("lists:delegation", list_uuid=mailing_list.uuid)
