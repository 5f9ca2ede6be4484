"""Sending domains of the signed-in account: list, add, detail with the DNS records
to publish, "Check DNS", delete. Another account's domain is a 404."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sending import domains
from sending.forms import SendingDomainForm
from sending.models import SendingDomain


def _get_domain(request: HttpRequest, domain_id: uuid.UUID) -> SendingDomain:
    return get_object_or_404(SendingDomain.objects.visible_to(request.user), uuid=domain_id)


@login_required
@require_GET
def domain_index(request: HttpRequest) -> HttpResponse:
    rows = SendingDomain.objects.visible_to(request.user).order_by("domain")
    return render(request, "sending/domain_index.html", {"domains": rows})


@login_required
@require_http_methods(["GET", "POST"])
def domain_create(request: HttpRequest) -> HttpResponse:
    form = SendingDomainForm(request.POST or None, account=request.user)
    if request.method == "POST" and form.is_valid():
        domain = domains.create(
            form.cleaned_data["domain"],
            account=request.user,
            selector=form.cleaned_data["selector"],
            ed25519=form.cleaned_data["ed25519"],
        )
        messages.success(request, f"{domain.domain} added: publish the records below.")
        return redirect("sending:domain-detail", domain.uuid)
    return render(request, "sending/domain_form.html", {"form": form})


@login_required
@require_GET
def domain_detail(request: HttpRequest, domain_id: uuid.UUID) -> HttpResponse:
    domain = _get_domain(request, domain_id)
    context = {
        "domain": domain,
        "records": domains.records(domain),
        "checks": domain.last_check.get("items", []),
    }
    return render(request, "sending/domain_detail.html", context)


@login_required
@require_POST
def domain_check(request: HttpRequest, domain_id: uuid.UUID) -> HttpResponse:
    domain = _get_domain(request, domain_id)
    # A few lookups with short timeouts, outside any transaction (no ATOMIC_REQUESTS).
    domains.check_dns(domain)
    if domain.verified:
        messages.success(request, f"{domain.domain} is verified: DKIM is in place.")
    else:
        messages.warning(request, f"{domain.domain} is not verified yet: see the checklist.")
    return redirect("sending:domain-detail", domain.uuid)


@login_required
@require_http_methods(["GET", "POST"])
def domain_delete(request: HttpRequest, domain_id: uuid.UUID) -> HttpResponse:
    domain = _get_domain(request, domain_id)
    if request.method == "POST":
        domain.delete()
        messages.success(request, f"{domain.domain} deleted: mail from it is no longer signed.")
        return redirect("sending:domain-index")
    return render(request, "sending/domain_confirm_delete.html", {"domain": domain})
