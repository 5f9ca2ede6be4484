"""CSV import pages: upload, column mapping, progress, rejects report, resume."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from uuid import UUID

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from lists import imports
from lists.access import get_list_for_user
from lists.models import CustomField, ImportJob
from mailpanel.lib import csvsafe


def _get_job(request: HttpRequest, job_uuid: UUID, *, write: bool = False) -> ImportJob:
    """404 for a job on a list the user cannot see, 403 when a viewer tries to change it."""
    job = get_object_or_404(
        ImportJob.objects.visible_to(request.user).select_related("mailing_list"), uuid=job_uuid
    )
    if write:
        get_list_for_user(request, job.mailing_list.uuid, write=True)
    return job


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 (with or without BOM) or Latin-1; separated by comma, semicolon, "
        "tab or |. The first row may be a header.",
    )


class MappingForm(forms.Form):
    mode = forms.ChoiceField(
        choices=ImportJob.Mode.choices, widget=forms.RadioSelect, initial=ImportJob.Mode.CONFIRMED
    )
    existing = forms.ChoiceField(
        label="Subscribers already in your account",
        choices=ImportJob.Existing.choices,
        widget=forms.RadioSelect,
        initial=ImportJob.Existing.UPDATE,
    )

    def __init__(self, *args: object, job: ImportJob, header: list[str], **kwargs: object):
        super().__init__(*args, **kwargs)
        targets = [("", "Ignore"), ("email", "E-mail address"), ("name", "Name")]
        targets += [
            (f"field:{f.key}", f"Field: {f.label}")
            for f in CustomField.objects.filter(account_id=job.account_id)
        ]
        self.columns = []
        for column in sorted(job.mapping, key=int):
            title = header[int(column)] if int(column) < len(header) else ""
            name = f"column_{column}"
            self.fields[name] = forms.ChoiceField(
                label=title or f"Column {int(column) + 1}",
                choices=targets,
                required=False,
                initial=job.mapping[column],
            )
            self.columns.append(name)

    def clean(self) -> dict:
        data = super().clean()
        mapping = {name.removeprefix("column_"): data.get(name, "") for name in self.columns}
        chosen = [target for target in mapping.values() if target]
        if chosen.count("email") != 1:
            raise forms.ValidationError(
                "Choose exactly one column that holds the e-mail addresses; "
                "without it nothing can be imported."
            )
        if len(chosen) != len(set(chosen)):
            raise forms.ValidationError("Each target can take only one column.")
        data["mapping"] = mapping
        return data


@login_required
def import_upload(request: HttpRequest, list_uuid: UUID) -> HttpResponse:
    mailing_list, _ = get_list_for_user(request, list_uuid, write=True)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.create_job(mailing_list, request.user, form.cleaned_data["file"])
        except imports.ImportFileError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("lists:import-mapping", job_uuid=job.uuid)
    jobs = mailing_list.import_jobs.all()[:10]
    return render(
        request,
        "lists/import_upload.html",
        {"mailing_list": mailing_list, "form": form, "import_jobs": jobs},
    )


@login_required
def import_mapping(request: HttpRequest, job_uuid: UUID) -> HttpResponse:
    job = _get_job(request, job_uuid, write=True)
    if job.status != ImportJob.Status.UPLOADED:
        return redirect("lists:import-detail", job_uuid=job.uuid)
    header, rows = imports.describe(job)
    form = MappingForm(request.POST or None, job=job, header=header)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        imports.start(job, data["mapping"], data["mode"], data["existing"])
        messages.success(request, "The import is queued; its progress shows below.")
        return redirect("lists:import-detail", job_uuid=job.uuid)
    columns = [form[name] for name in form.columns]
    return render(
        request,
        "lists/import_mapping.html",
        {
            "job": job,
            "mailing_list": job.mailing_list,
            "form": form,
            "columns": columns,
            "header": header,
            "rows": rows,
        },
    )


@login_required
def import_detail(request: HttpRequest, job_uuid: UUID) -> HttpResponse:
    job = _get_job(request, job_uuid)
    rejects = job.rejects.all()[:50]
    return render(
        request,
        "lists/import_detail.html",
        {"job": job, "mailing_list": job.mailing_list, "rejects": rejects},
    )


@login_required
def import_progress(request: HttpRequest, job_uuid: UUID) -> HttpResponse:
    job = _get_job(request, job_uuid)
    return render(request, "lists/import_progress.html", {"job": job})


@login_required
@require_POST
def import_resume(request: HttpRequest, job_uuid: UUID) -> HttpResponse:
    job = _get_job(request, job_uuid, write=True)
    if imports.resume(job):
        messages.success(request, "The import continues after the last saved chunk.")
    else:
        messages.info(request, "This import is not interrupted; there is nothing to resume.")
    return redirect("lists:import-detail", job_uuid=job.uuid)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _report_rows(job: ImportJob) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["line", "reason", "raw"])
    rows = job.rejects.order_by("line").values_list("line", "reason", "raw")
    for line, reason, raw in rows.iterator(chunk_size=2000):
        yield writer.writerow(csvsafe.neutralise_row([line, reason, raw]))


@login_required
def import_rejects(request: HttpRequest, job_uuid: UUID) -> HttpResponse:
    job = _get_job(request, job_uuid)
    if job.status == ImportJob.Status.UPLOADED:
        raise Http404("This import has not run yet.")
    response = StreamingHttpResponse(_report_rows(job), content_type="text/csv; charset=utf-8")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", job.original_name.rsplit(".", 1)[0])[:80]
    response["Content-Disposition"] = f'attachment; filename="{name or "import"}-rejects.csv"'
    return response
