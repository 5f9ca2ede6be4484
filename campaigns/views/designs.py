from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from campaigns import access, designs, preview
from campaigns.forms import EmailTemplateForm, NewTemplateForm
from campaigns.merge import MergeError
from campaigns.models import EmailTemplate
from campaigns.sandbox import framed_preview


@login_required
@require_GET
def template_index(request: HttpRequest) -> HttpResponse:
    # The first visit gives the account the shipped starting templates.
    designs.ensure_starting_templates(request.user)
    templates = EmailTemplate.objects.owned_by(request.user).annotate(used=Count("campaigns"))
    return render(
        request,
        "campaigns/template_index.html",
        {"templates": templates, "new_form": NewTemplateForm()},
    )


@login_required
@require_POST
def template_create(request: HttpRequest) -> HttpResponse:
    form = NewTemplateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the template a name and choose where to start from.")
        return redirect("campaigns:template-index")
    template = EmailTemplate.objects.create(
        account=request.user,
        name=form.cleaned_data["name"],
        html=designs.starting_html(form.cleaned_data["start_from"]),
    )
    return redirect("campaigns:template-edit", template.uuid)


@login_required
def template_edit(request: HttpRequest, template_id: uuid.UUID) -> HttpResponse:
    template = access.get_template(request, template_id)
    form = EmailTemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Template saved.")
        return redirect("campaigns:template-edit", template.uuid)
    return render(request, "campaigns/template_form.html", {"form": form, "template": template})


@login_required
@require_GET
def template_preview(request: HttpRequest, template_id: uuid.UUID) -> HttpResponse:
    template = access.get_template(request, template_id)
    try:
        html = preview.template_preview(template)
    except MergeError as exc:
        from django.utils.html import escape

        html = "<p>" + "<br>".join(escape(e) for e in exc.errors) + "</p>"
    return framed_preview(html)


@login_required
@require_POST
def template_delete(request: HttpRequest, template_id: uuid.UUID) -> HttpResponse:
    template = access.get_template(request, template_id)
    template.delete()  # campaigns using it fall back to the plain layout until changed
    messages.success(request, "Template deleted.")
    return redirect("campaigns:template-index")
