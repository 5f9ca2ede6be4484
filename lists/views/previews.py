"""The form builder's previews: the three embeds of a form, for its owner, saving nothing.

Reached through a signed preview token (lists.previews) that only the owner's builder
pages hand out: the previews run in sandboxed frames, where the session cookie is not
sent. They serve a disabled form too; the public endpoints of lists.views.public keep
refusing it. Every answer says it is a preview.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from lists import previews
from lists.models import SignupForm
from lists.views.public import (
    PAGE_CSP,
    brand_of,
    embed_snippets,
    form_config_payload,
    hosted_form_context,
    never_500,
    post_data,
    with_cors,
)

# Framed by the builder page only (its origin), never by another site.
PREVIEW_CSP = PAGE_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
KINDS = ("html", "script")


def preview_urls(request: HttpRequest, form: SignupForm) -> dict[str, str]:
    """The builder's preview frames of a form: "html", "script" and "hosted"."""
    token = previews.token_for(form)
    return {
        "html": reverse("public:form-preview", args=[token, "html"]),
        "script": reverse("public:form-preview", args=[token, "script"]),
        "hosted": reverse("public:preview-page", args=[token]),
    }


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    context = {"preview_note": previews.NOTE, **context}
    response = render(request, template, context, status=status)
    response["Content-Security-Policy"] = PREVIEW_CSP
    response["Cache-Control"] = "no-store"
    return response


def _missing(request: HttpRequest) -> HttpResponse:
    return _page(request, "public/form_missing.html", {"brand": None}, status=404)


def _json(payload: dict, status: int = 200) -> HttpResponse:
    response = JsonResponse(payload, status=status)
    response["Cache-Control"] = "no-store"
    # The script preview runs in a sandboxed frame: an opaque origin, so CORS.
    return with_cors(response)


@xframe_options_sameorigin
@never_500
@require_http_methods(["GET", "HEAD"])
def form_preview(request: HttpRequest, token: str, kind: str) -> HttpResponse:
    """A page holding one embed of the form, wired to the preview endpoints below."""
    form = previews.form_for(token)
    if form is None or kind not in KINDS:
        return _missing(request)
    hosted = request.build_absolute_uri(reverse("public:preview-page", args=[token]))
    snippet = embed_snippets(request, form, hosted)[kind]
    return _page(request, "public/preview.html", {"snippet": snippet, "brand": None})


@csrf_exempt
@xframe_options_sameorigin
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def preview_page(request: HttpRequest, token: str) -> HttpResponse:
    """The hosted page in preview, and the target of the plain HTML embed's preview."""
    form = previews.form_for(token)
    if form is None:
        return _missing(request)
    action = reverse("public:preview-page", args=[token])
    if request.method != "POST":
        context = {**hosted_form_context(request, form), "action": action}
        return _page(request, "public/form.html", context)
    result = previews.check(form, request.POST)
    if not result.ok:
        context = hosted_form_context(request, form, request.POST, result.errors)
        context["action"] = action
        return _page(request, "public/form.html", context, status=result.status)
    lists = list(form.lists.filter(owner_id=form.account_id)[:1])
    context = {
        "form": form,
        "brand": brand_of(lists[0] if lists else None),
        "message": result.message,
        # A real signup goes on to the owner's page; the preview stays and says where.
        "redirect_url": form.redirect_url,
    }
    return _page(request, "public/form_done.html", context)


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "OPTIONS"])
def preview_config(request: HttpRequest, token: str) -> HttpResponse:
    """embed.json of the script embed's preview: it posts to the preview's submit."""
    if request.method == "OPTIONS":
        return with_cors(HttpResponse(status=204))
    form = previews.form_for(token)
    if form is None:
        return _json({"ok": False, "errors": {"__all__": ["No such form."]}}, status=404)
    submit_url = request.build_absolute_uri(reverse("public:preview-submit", args=[token]))
    return _json({**form_config_payload(request, form, submit_url), "preview": previews.NOTE})


@csrf_exempt
@never_500
@require_http_methods(["POST", "OPTIONS"])
def preview_submit(request: HttpRequest, token: str) -> HttpResponse:
    """The script embed's preview posts: the answer a real signup would get, nothing saved."""
    if request.method == "OPTIONS":
        return with_cors(HttpResponse(status=204))
    form = previews.form_for(token)
    if form is None:
        return _json({"ok": False, "errors": {"__all__": ["No such form."]}}, status=404)
    data = post_data(request)
    if data is None:
        errors = {"__all__": ["Send a form or a JSON object."]}
        return _json({"ok": False, "errors": errors}, status=400)
    result = previews.check(form, data)
    if not result.ok:
        return _json({"ok": False, "errors": result.errors}, status=result.status)
    # No redirect: the preview shows the success text where a visitor would be sent on.
    body = {"ok": True, "message": result.message, "redirect": None, "preview": previews.NOTE}
    return _json(body)
