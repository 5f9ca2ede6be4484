"""Segments (the account's saved filters) and CSV exports of lists and segments.

Segments belong to the signed-in user's account: another account's segment is a 404.
The editor is a plain form of condition rows (it works without JavaScript: "Add a
condition" and "Remove" are submit buttons); static/js/segment-editor.js only narrows
the operator choices to the chosen subject. A live count comes from ``segment_count``,
posted by htmx as the form changes.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lists import exports, segments
from lists.access import get_list_for_user
from lists.filters import filter_subscriptions, parse_filter
from lists.models import ExportJob, Segment, Subscriber

SAMPLE_SIZE = 20
MAX_ROWS = segments.MAX_CONDITIONS
STATUS_PREFIX = "status:"


# --- The editor's rows <-> a definition ---------------------------------------------------


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    match = forms.ChoiceField(
        choices=[("all", "all of these conditions"), ("any", "any of these conditions")],
        label="Match subscribers who meet",
    )


def subject_choices(context: segments.Context) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The "what" select of a row, grouped: (value, label, the operators it allows).

    Values encode type and target (``field:city``, ``list:<uuid>``); the operators let
    the editor's script offer only the comparisons that subject supports.
    """
    statuses = " ".join(f"{STATUS_PREFIX}{s}" for s in ["any", *segments.STATUSES])
    dates = " ".join(segments.DATE_OPS)
    groups = [
        (
            "Subscriber",
            [
                ("email", "E-mail address", " ".join(segments.EMAIL_OPS)),
                ("name", "Name", " ".join(segments.NAME_OPS)),
            ],
        )
    ]
    if context.fields:
        fields = [
            (f"field:{key}", f.label, " ".join(segments.FIELD_OPS.get(f.type, ())))
            for key, f in context.fields.items()
        ]
        groups.append(("Custom fields", fields))
    lists = sorted(context.lists.items(), key=lambda item: item[1].name.lower())
    groups += [
        ("Lists", [(f"list:{u}", f"On list {ml.name}", statuses) for u, ml in lists]),
        (
            "Not on lists",
            [(f"not_list:{u}", f"Not on list {ml.name}", statuses) for u, ml in lists],
        ),
        (
            "Subscription date",
            [("subscribed", "Subscribed to any list", dates)]
            + [(f"subscribed:{u}", f"Subscribed to {ml.name}", dates) for u, ml in lists],
        ),
    ]
    # Condition types other apps registered with editor rows (engagement, from stats).
    for _name, editor in segments.editors():
        groups += editor.subjects(context)
    return groups


def op_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    statuses = [(f"{STATUS_PREFIX}any", "with any status")] + [
        (f"{STATUS_PREFIX}{s}", f"as {s}") for s in segments.STATUSES
    ]
    choices = [("Comparison", list(segments.OP_LABELS.items())), ("List status", statuses)]
    registered: dict[str, str] = {}
    for _name, editor in segments.editors():
        registered.update(editor.ops)
    if registered:
        choices.append(("More", list(registered.items())))
    return choices


def valueless_ops() -> list[str]:
    """Operators after which the editor hides the value box."""
    return [*segments.VALUELESS_OPS] + [op for _, e in segments.editors() for op in e.valueless]


def row_to_condition(what: str, op: str, value: str) -> dict | None:
    """One editor row as a condition (None for an empty row); validate() judges it."""
    kind, _, target = what.partition(":")
    if not kind:
        return None
    registered = segments.CONDITION_TYPES.get(kind)
    if registered is not None and registered.editor is not None:
        return registered.editor.to_condition(target, op, value)
    if kind == "field":
        condition = {"type": "field", "field": target, "op": op}
        if op not in segments.VALUELESS_OPS:
            condition["value"] = value
        return condition
    if kind in ("list", "not_list"):
        status = op.removeprefix(STATUS_PREFIX) if op.startswith(STATUS_PREFIX) else op
        return {"type": kind, "list": target, "status": status or "any"}
    if kind == "subscribed":
        condition = {"type": "subscribed", "op": op, "value": value}
        if target:
            condition["list"] = target
        return condition
    return {"type": kind, "op": op, "value": value}


def condition_to_row(condition: dict) -> dict | None:
    """The editor row for a condition, or None when the rows cannot show it (a group)."""
    kind = condition.get("type")
    registered = segments.CONDITION_TYPES.get(kind) if isinstance(kind, str) else None
    if registered is not None and registered.editor is not None:
        return registered.editor.to_row(condition)
    value = condition.get("value")
    value = "" if value is None else ("yes" if value is True else "no" if value is False else value)
    if kind == "field":
        return {
            "what": f"field:{condition.get('field')}",
            "op": condition.get("op"),
            "value": value,
        }
    if kind in ("list", "not_list"):
        op = f"{STATUS_PREFIX}{condition.get('status', 'any')}"
        return {"what": f"{kind}:{condition.get('list')}", "op": op, "value": ""}
    if kind == "subscribed":
        target = f":{condition['list']}" if condition.get("list") else ""
        return {"what": f"subscribed{target}", "op": condition.get("op"), "value": value}
    if kind in ("email", "name"):
        return {"what": kind, "op": condition.get("op"), "value": value}
    return None


def definition_from_post(data: QueryDict) -> tuple[dict, list[dict], list[str]]:
    """(definition, rows as posted, problems reading the form) from an editor post.

    Conditions the rows cannot show travel in the hidden "extra" input as JSON; they
    are validated like everything else before anything is saved or counted.
    """
    rows, conditions, problems = [], [], []
    count = min(_int(data.get("rows"), 1), MAX_ROWS + 1)
    for index in range(count):
        if data.get("remove") == str(index):
            continue
        row = {key: data.get(f"c-{index}-{key}", "").strip() for key in ("what", "op", "value")}
        condition = row_to_condition(row["what"], row["op"], row["value"])
        if condition is not None:
            rows.append(row)
            conditions.append(condition)
    try:
        extra = json.loads(data.get("extra") or "[]")
    except ValueError:
        extra = []
        problems.append("The hidden conditions could not be read; they were dropped.")
    if isinstance(extra, list):
        conditions += extra
    match = data.get("match") if data.get("match") in segments.MATCHES else "all"
    return {"match": match, "conditions": conditions}, rows, problems


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def editor_context(account: object, definition: dict, rows: list[dict] | None) -> dict:
    context = segments.Context.for_account(account)
    extra = []
    if rows is None:
        rows = []
        for condition in definition.get("conditions", []):
            row = condition_to_row(condition) if isinstance(condition, dict) else None
            if row is None:
                extra.append(condition)
            else:
                rows.append(row)
    else:
        extra = [c for c in definition.get("conditions", []) if condition_to_row(c) is None]
    # Always one blank row, so a browser without JavaScript can add a condition.
    rows = [*rows, {"what": "", "op": "", "value": ""}]
    return {
        "rows": list(enumerate(rows)),
        "row_count": len(rows),
        "subjects": subject_choices(context),
        "ops": op_choices(),
        "valueless_ops": valueless_ops(),
        "extra_json": json.dumps(extra) if extra else "",
        "extra_count": len(extra),
    }


# --- Segment pages ------------------------------------------------------------------------


def _get_segment(request: HttpRequest, segment_uuid: uuid.UUID) -> Segment:
    return get_object_or_404(Segment.objects.visible_to(request.user), uuid=segment_uuid)


def _matching(segment: Segment) -> tuple[QuerySet[Subscriber] | None, list[str]]:
    try:
        return segments.subscribers_in(segment), []
    except segments.InvalidSegment as exc:
        return None, exc.errors


@login_required
def segment_index(request: HttpRequest) -> HttpResponse:
    account_segments = Segment.objects.visible_to(request.user).order_by("name", "id")
    return render(request, "lists/segment_index.html", {"segments": account_segments})


@login_required
@require_http_methods(["GET", "POST"])
def segment_create(request: HttpRequest) -> HttpResponse:
    return _editor(request, Segment(account=request.user, definition={"match": "all"}))


@login_required
@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, segment_uuid: uuid.UUID) -> HttpResponse:
    return _editor(request, _get_segment(request, segment_uuid))


def _editor(request: HttpRequest, segment: Segment) -> HttpResponse:
    errors: list[str] = []
    if request.method == "POST":
        form = SegmentForm(request.POST)
        definition, rows, errors = definition_from_post(request.POST)
        # "Add a condition" and "Remove" only redraw the rows: empty rows are dropped and
        # one blank row is always offered, so the filled-in blank becomes a kept row.
        redraw = "add" in request.POST or "remove" in request.POST
        if not redraw:
            errors += segments.validate(definition, request.user)
            if form.is_valid() and not errors:
                segment.name = form.cleaned_data["name"]
                segment.definition = definition
                segment.save()
                messages.success(request, f"Segment “{segment.name}” saved.")
                return redirect("lists:segment-detail", segment.uuid)
    else:
        definition, rows = segment.definition, None
        form = SegmentForm(initial={"name": segment.name, "match": definition.get("match", "all")})
    context = {"form": form, "segment": segment, "errors": errors}
    context.update(editor_context(request.user, definition, rows))
    return render(request, "lists/segment_form.html", context)


@login_required
@require_POST
def segment_count(request: HttpRequest) -> HttpResponse:
    """The live count of the editor: validates the posted rows and counts matches."""
    definition, _, errors = definition_from_post(request.POST)
    errors += segments.validate(definition, request.user)
    count = None
    if not errors:
        count = segments.matching(definition, request.user).count()
    return render(request, "lists/segment_count.html", {"count": count, "errors": errors})


@login_required
def segment_detail(request: HttpRequest, segment_uuid: uuid.UUID) -> HttpResponse:
    segment = _get_segment(request, segment_uuid)
    matching, errors = _matching(segment)
    context = {"segment": segment, "errors": errors, "count": None, "sample": []}
    context["export_jobs"] = segment.export_jobs.all()[:3]
    if matching is not None:
        context["count"] = matching.count()
        context["sample"] = list(matching.order_by("-id")[:SAMPLE_SIZE])
    return render(request, "lists/segment_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def segment_delete(request: HttpRequest, segment_uuid: uuid.UUID) -> HttpResponse:
    segment = _get_segment(request, segment_uuid)
    if request.method == "POST":
        segment.delete()
        messages.success(request, f"Segment “{segment.name}” deleted.")
        return redirect("lists:segment-index")
    return render(request, "lists/segment_confirm_delete.html", {"segment": segment})


# --- Exports ------------------------------------------------------------------------------


def _csv_response(rows: object, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(exports.stream_csv(rows), content_type="text/csv")
    filename = exports.filename(name, timezone.localdate())
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def segment_export(request: HttpRequest, segment_uuid: uuid.UUID) -> HttpResponse:
    segment = _get_segment(request, segment_uuid)
    _, errors = _matching(segment)
    if errors:
        messages.error(request, "Fix the segment before exporting it: " + "; ".join(errors))
        return redirect("lists:segment-edit", segment.uuid)
    return _csv_response(exports.segment_rows(segment, request.user.tzinfo()), segment.name)


@login_required
@require_POST
def list_export_start(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    """Starts an export job of the list page's current filter (posted as hidden fields).
    Viewers may export: it only reads."""
    mailing_list, _ = get_list_for_user(request, list_uuid)
    flt = parse_filter(mailing_list, request.POST)
    exports.start_list_export(mailing_list, request.user, flt.params())
    messages.success(request, "The export is being written; download it below when it is done.")
    url = reverse("lists:detail", args=[mailing_list.uuid])
    return redirect(f"{url}?{urlencode(flt.params())}" if flt.params() else url)


@login_required
@require_POST
def segment_export_start(request: HttpRequest, segment_uuid: uuid.UUID) -> HttpResponse:
    segment = _get_segment(request, segment_uuid)
    _, errors = _matching(segment)
    if errors:
        messages.error(request, "Fix the segment before exporting it: " + "; ".join(errors))
        return redirect("lists:segment-edit", segment.uuid)
    exports.start_segment_export(segment, request.user)
    messages.success(request, "The export is being written; download it below when it is done.")
    return redirect("lists:segment-detail", segment.uuid)


def _get_export(request: HttpRequest, job_uuid: uuid.UUID) -> ExportJob:
    """An export of a list the user may see (or of their segment); any other is a 404."""
    jobs = ExportJob.objects.visible_to(request.user)
    return get_object_or_404(jobs, uuid=job_uuid)


@login_required
@require_GET
def export_progress(request: HttpRequest, job_uuid: uuid.UUID) -> HttpResponse:
    """One export job's state, polled by htmx while it runs."""
    job = _get_export(request, job_uuid)
    return render(request, "lists/export_progress.html", {"job": job})


@login_required
@require_GET
def export_download(request: HttpRequest, job_uuid: uuid.UUID) -> HttpResponse:
    job = _get_export(request, job_uuid)
    if job.status != ExportJob.Status.DONE or not job.file:
        raise Http404("This export is not ready.")
    response = FileResponse(
        job.file.open("rb"), as_attachment=True, filename=job.filename, content_type="text/csv"
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def list_export(request: HttpRequest, list_uuid: uuid.UUID) -> HttpResponse:
    """The list's subscriptions as CSV; the list page's filter parameters (q, status,
    field, value) narrow it. Viewers may export: it only reads."""
    mailing_list, _ = get_list_for_user(request, list_uuid)
    subscriptions = filter_subscriptions(mailing_list, request.GET)
    rows = exports.list_rows(mailing_list, subscriptions, request.user.tzinfo())
    return _csv_response(rows, mailing_list.name)
