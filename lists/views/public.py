"""Public pages for subscribers and form posters: no login, reached by public id or token.

These views never answer 500 (see ``never_500``). Token pages are csrf_exempt:
the signed token in the URL is itself an unguessable secret bound to one
subscriber, which is what a CSRF token would add, and the hosted signup page is
framed on other sites where Django's CSRF cookie would not be sent.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
    UnreadablePostError,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from lists import confirmation, preferences, ratelimit, signup
from lists.models import MailingList, SignupForm
from mailpanel.lib import signing

logger = logging.getLogger(__name__)

# The hosted form may be framed anywhere, and its post may redirect to the owner's site.
FRAMEABLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "form-action 'self' https: http:",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors *",
    ]
)
# Confirm page: its POST may redirect to the owner's "after confirmation" page.
PAGE_CSP = FRAMEABLE_CSP.replace("frame-ancestors *", "frame-ancestors 'none'")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def never_500(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A public endpoint answers a clear 400/503, never a server error page."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except signing.BadToken:
            return _invalid_link(request)
        except (MultiPartParserError, SuspiciousOperation, UnreadablePostError):
            # A body Django cannot parse: the poster's mistake, not ours.
            if request.path.endswith(("/submit", "/embed.json")):
                return with_cors(JsonResponse({"ok": False, "errors": _UNREADABLE}, status=400))
            return HttpResponseBadRequest(
                "The request could not be read.", content_type="text/plain"
            )
        except Exception:  # noqa: BLE001
            logger.exception("public view %s failed", view.__name__)
            if request.path.endswith(("/submit", "/embed.json")):
                return with_cors(JsonResponse({"ok": False, "errors": _SORRY}, status=503))
            return render(request, "public/error.html", {"brand": None}, status=503)

    return wrapped


_UNREADABLE = {signup.NON_FIELD: ["The form data could not be read."]}
_SORRY = {signup.NON_FIELD: ["Something went wrong on our side. Please try again later."]}


def with_cors(response: HttpResponse) -> HttpResponse:
    for key, value in CORS_HEADERS.items():
        response[key] = value
    return response


def _invalid_link(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "public/invalid_link.html",
        {"brand": None, "text": confirmation.DEFAULT_TEXTS["invalid_link_text"]},
        status=400,
    )


def _client(request: HttpRequest) -> tuple[str, str]:
    return ratelimit.client_ip(request), request.META.get("HTTP_USER_AGENT", "")[:500]


def _get_form(form_id: object) -> SignupForm | None:
    return signup.open_form(form_id)


def brand_of(mailing_list: MailingList | None) -> dict[str, str] | None:
    if mailing_list is None:
        return None
    color = mailing_list.brand_color or ""
    valid = (
        len(color) == 7
        and color.startswith("#")
        and all(c in "0123456789abcdefABCDEF" for c in color[1:])
    )
    return {
        "name": mailing_list.name,
        "logo_url": mailing_list.logo_url,
        "color": color if valid else "#2563eb",
    }


# --- Signup -------------------------------------------------------------------------------


def _form_context(
    request: HttpRequest, form: SignupForm, data: Any = None, errors: Any = None
) -> dict:
    lists = signup.form_lists(form)
    data = data if data is not None else {}
    errors = errors or {}
    chosen = set(data.getlist("lists")) if hasattr(data, "getlist") else set()
    return {
        "form": form,
        "brand": brand_of(lists[0] if lists else None),
        "action": reverse("public:form", args=[form.uuid]),
        "fields": [
            {
                "spec": spec,
                "value": signup._first(data, spec.name) if data else "",
                "errors": errors.get(spec.name, []),
            }
            for spec in signup.form_fields(form)
        ],
        "lists": lists if form.allow_list_choice and len(lists) > 1 else [],
        "chosen": chosen or {str(ml.uuid) for ml in lists},
        "list_errors": errors.get("lists", []),
        "consent_errors": errors.get("consent", []),
        "non_field_errors": errors.get(signup.NON_FIELD, []),
        "timestamp": signing.form_timestamp(str(form.uuid)),
        "honeypot": signup.HONEYPOT,
        "timestamp_name": signup.TIMESTAMP,
    }


def hosted_form_context(
    request: HttpRequest, form: SignupForm, data: Any = None, errors: Any = None
) -> dict:
    """The hosted page's template context for a form (the builder's previews too), with
    posted values and their errors when a post is shown again."""
    return _form_context(request, form, data, errors)


def _framed(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = FRAMEABLE_CSP
    return response


@csrf_exempt
@xframe_options_exempt
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def form_page(request: HttpRequest, form_id: object) -> HttpResponse:
    """The hosted signup page (link or iframe), and the target of the plain HTML embed."""
    form = _get_form(form_id)
    if form is None:
        return _framed(render(request, "public/form_missing.html", {"brand": None}, status=404))
    if request.method != "POST":
        return _framed(render(request, "public/form.html", _form_context(request, form)))
    ip, agent = _client(request)
    # This endpoint is also the plain HTML embed's target, which carries no stamp.
    result = signup.process(form, request.POST, ip=ip, user_agent=agent, stamp_optional=True)
    if not result.ok:
        context = _form_context(request, form, request.POST, result.errors)
        return _framed(render(request, "public/form.html", context, status=result.status))
    if form.redirect_url:
        return HttpResponseRedirect(form.redirect_url)
    context = {
        "form": form,
        "brand": _form_context(request, form)["brand"],
        "message": result.message,
    }
    return _framed(render(request, "public/form_done.html", context))


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "OPTIONS"])
def form_config(request: HttpRequest, form_id: object) -> HttpResponse:
    """The form as JSON for the script embed (with a fresh fill-time stamp)."""
    if request.method == "OPTIONS":
        return with_cors(HttpResponse(status=204))
    form = _get_form(form_id)
    if form is None:
        return with_cors(
            JsonResponse({"ok": False, "errors": {"__all__": ["No such form."]}}, status=404)
        )
    submit_url = request.build_absolute_uri(reverse("public:form-submit", args=[form.uuid]))
    payload = form_config_payload(request, form, submit_url)
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return with_cors(response)


def post_data(request: HttpRequest) -> Any:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None
    return request.POST


@csrf_exempt
@never_500
@require_http_methods(["POST", "OPTIONS"])
def form_submit(request: HttpRequest, form_id: object) -> HttpResponse:
    """The script embed's endpoint: JSON answers, CORS for any origin (this endpoint only)."""
    if request.method == "OPTIONS":
        return with_cors(HttpResponse(status=204))
    form = _get_form(form_id)
    if form is None:
        return with_cors(
            JsonResponse({"ok": False, "errors": {"__all__": ["No such form."]}}, status=404)
        )
    data = post_data(request)
    if data is None:
        return with_cors(
            JsonResponse(
                {"ok": False, "errors": {"__all__": ["Send a form or a JSON object."]}}, status=400
            )
        )
    ip, agent = _client(request)
    result = signup.process(form, data, ip=ip, user_agent=agent)
    if not result.ok:
        return with_cors(JsonResponse({"ok": False, "errors": result.errors}, status=result.status))
    body = {"ok": True, "message": result.message, "redirect": form.redirect_url or None}
    return with_cors(JsonResponse(body))


def embed_snippets(request: HttpRequest, form: SignupForm, hosted: str = "") -> dict[str, str]:
    """The three ways to embed a form, as text to copy (used by the form builder).

    ``hosted``: the URL the embeds post to and load from; the form's public page by
    default (the builder's previews pass their own, lists.previews).
    """
    from django.template.loader import render_to_string

    base = request.build_absolute_uri("/").rstrip("/")
    hosted = hosted or base + reverse("public:form", args=[form.uuid])
    context = _form_context(request, form)
    context["action"] = hosted
    # Pasted once and served for years: no fill-time stamp (see lists.signup.stamp_state).
    context["timestamp"] = ""
    return {
        "html": render_to_string("public/_embed_form.html", context).strip(),
        "script": (
            f'<div data-mailpanel-form="{hosted}"></div>\n'
            f'<script src="{base}{static("js/embed.js")}" async></script>'
        ),
        # The title is the owner's text inside an attribute: escaped like the template does.
        "iframe": (
            f'<iframe src="{hosted}" title="{escape(form.title)}" width="100%" height="520" '
            'style="border:0;max-width:480px"></iframe>'
        ),
        "hosted": hosted,
    }


def form_config_payload(request: HttpRequest, form: SignupForm, submit_url: str) -> dict:
    """The form as the script embed renders it (embed.json), posting to ``submit_url``."""
    context = _form_context(request, form)
    return {
        "ok": True,
        "title": form.title,
        "button": form.button_text,
        "consent": form.consent_text,
        "submit_url": submit_url,
        "honeypot": signup.HONEYPOT,
        "timestamp_name": signup.TIMESTAMP,
        "timestamp": context["timestamp"],
        "fields": [
            {
                "name": f["spec"].name,
                "label": f["spec"].label,
                "required": f["spec"].required,
                "type": f["spec"].type,
                "choices": list(f["spec"].choices),
            }
            for f in context["fields"]
        ],
        "lists": [{"id": str(ml.uuid), "name": ml.name} for ml in context["lists"]],
        "brand_color": (context["brand"] or {}).get("color", ""),
    }


# --- Confirmation -------------------------------------------------------------------------


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a Confirm button (mail scanners fetch links); the POST confirms."""
    if request.method != "POST":
        result = signup.read_confirmation(token)
        mailing_list = result.mailing_list
        context = {
            "brand": brand_of(mailing_list),
            "title": confirmation.text(mailing_list, "confirm_page_title"),
            "text": confirmation.text(mailing_list, "confirm_page_text"),
            "button": confirmation.text(mailing_list, "confirm_button"),
            "lists": [s.mailing_list for s in result.confirmed],
        }
        response = render(request, "public/confirm.html", context)
        response["Content-Security-Policy"] = PAGE_CSP
        return response
    ip, agent = _client(request)
    result = signup.confirm(token, ip=ip, user_agent=agent)
    if result.form is not None and result.form.confirmed_redirect_url:
        return HttpResponseRedirect(result.form.confirmed_redirect_url)
    mailing_list = result.mailing_list
    context = {
        "brand": brand_of(mailing_list),
        "title": confirmation.text(mailing_list, "confirm_page_title"),
        "text": confirmation.text(mailing_list, "confirmed_text"),
        "texts": confirmation.texts(mailing_list),
        "preferences_url": reverse(
            "public:preferences",
            args=[signing.preference_token(result.confirmed[0].subscriber_id)],
        ),
    }
    return render(request, "public/message.html", context)


# --- Unsubscribe --------------------------------------------------------------------------


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button and never changes anything; the POST unsubscribes."""
    subscription = preferences.subscription_for_unsubscribe(token)
    mailing_list = subscription.mailing_list
    if request.method == "POST":
        preferences.unsubscribe(token, reason=request.POST.get("reason", ""))
        context = {
            "brand": brand_of(mailing_list),
            "title": confirmation.text(mailing_list, "unsubscribe_title"),
            "text": confirmation.text(mailing_list, "unsubscribed_text"),
            "texts": confirmation.texts(mailing_list),
            "preferences_url": reverse(
                "public:preferences", args=[signing.preference_token(subscription.subscriber_id)]
            ),
        }
        return render(request, "public/message.html", context)
    context = {
        "brand": brand_of(mailing_list),
        "title": confirmation.text(mailing_list, "unsubscribe_title"),
        "text": confirmation.text(mailing_list, "unsubscribe_text"),
        "button": confirmation.text(mailing_list, "unsubscribe_button"),
        "already": subscription.status not in ("confirmed", "pending"),
        "unsubscribed_text": confirmation.text(mailing_list, "unsubscribed_text"),
        "texts": confirmation.texts(mailing_list),
        "preferences_url": reverse(
            "public:preferences", args=[signing.preference_token(subscription.subscriber_id)]
        ),
    }
    return render(request, "public/unsubscribe.html", context)


@csrf_exempt
@never_500
@require_http_methods(["POST"])
def one_click(request: HttpRequest, token: str) -> HttpResponse:
    """RFC 8058: POST ``List-Unsubscribe=One-Click`` unsubscribes at once.

    Answers 200 with no cookie and no redirect (mail providers post here from their
    servers and follow nothing).
    """
    try:
        value = request.POST.get("List-Unsubscribe", "")
    except Exception:  # noqa: BLE001
        value = ""
    if value != "One-Click":
        return HttpResponseBadRequest(
            "Expected a POST body List-Unsubscribe=One-Click.", content_type="text/plain"
        )
    try:
        preferences.unsubscribe(token, note="one-click unsubscribe (RFC 8058)")
    except signing.BadToken:
        return HttpResponseBadRequest("This link is not valid.", content_type="text/plain")
    return HttpResponse("Unsubscribed.", content_type="text/plain")


# --- Preferences --------------------------------------------------------------------------

# The <input type> of a custom field on the preference page (yes/no is a checkbox, choice
# a select); dates are stored as YYYY-MM-DD, which is what a date input sends.
INPUT_TYPES = {"number": "number", "date": "date"}


def _preferences_context(subscriber: Any, token: str, errors: dict | None = None) -> dict:
    subs = preferences.subscriptions_of(subscriber)
    fields = [
        {
            "name": f"f_{cf.key}",
            "label": cf.label,
            "value": (subscriber.fields or {}).get(cf.key, ""),
            "type": cf.type,
            "input_type": INPUT_TYPES.get(cf.type, "text"),
            "choices": cf.choices,
            "error": (errors or {}).get(f"f_{cf.key}", ""),
        }
        for cf in preferences.editable_fields(subscriber)
    ]
    first_list = subs[0].mailing_list if subs else None
    return {
        "brand": brand_of(first_list),
        "title": confirmation.text(first_list, "preferences_title"),
        "texts": confirmation.texts(first_list),
        "subscriber": subscriber,
        "subscriptions": subs,
        "fields": fields,
        "errors": errors or {},
        "token": token,
    }


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def preferences_page(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = preferences.subscriber_for_preferences(token)
    saved = ""
    errors: dict = {}
    refused: list[MailingList] = []
    if request.method == "POST":
        if request.POST.get("action") == "unsubscribe_all":
            preferences.unsubscribe_everywhere(subscriber)
            saved = "preferences_unsubscribed_all"
        else:
            errors = preferences.update_fields(subscriber, request.POST)
            if not errors:
                wanted = preferences.parse_list_ids(request.POST.getlist("lists"))
                refused = preferences.set_lists(subscriber, wanted).refused
                saved = "preferences_saved"
    context = _preferences_context(subscriber, token, errors)
    context["saved"] = context["texts"][saved] if saved else ""
    if refused:
        # The first refused list's wording, naming every refused list.
        names = MailingList(name=", ".join(ml.name for ml in refused), texts=refused[0].texts)
        context["refused"] = confirmation.text(names, "preferences_blocked")
    return render(request, "public/preferences.html", context, status=400 if errors else 200)


@never_500
@require_http_methods(["GET", "HEAD"])
def preferences_export(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = preferences.subscriber_for_preferences(token)
    response = JsonResponse(preferences.export_data(subscriber), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="my-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@never_500
@require_http_methods(["GET", "HEAD", "POST"])
def preferences_delete(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = preferences.subscriber_for_preferences(token)
    subs = preferences.subscriptions_of(subscriber)
    first_list = subs[0].mailing_list if subs else None
    brand, texts = brand_of(first_list), confirmation.texts(first_list)
    if request.method == "POST":
        preferences.erase(subscriber)
        context = {"brand": brand, "title": texts["deleted_title"], "text": texts["deleted_text"]}
        return render(request, "public/message.html", context)
    context = {"brand": brand, "token": token, "texts": texts}
    return render(request, "public/delete.html", context)


def unsubscribe_urls(subscriber_id: int, list_id: int, campaign_id: int | None = None) -> dict:
    """Absolute unsubscribe and one-click URLs, for the List-Unsubscribe header."""
    return confirmation.unsubscribe_links(subscriber_id, list_id, campaign_id)
