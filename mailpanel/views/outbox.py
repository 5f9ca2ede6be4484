"""The operator's view of the local outbox (mail captured by ``run_outbox``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from mailpanel import outbox

PER_PAGE = 50


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in staff only; anyone else signed in gets a 404, as for any foreign object."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_staff:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


def _get_message(key: str) -> outbox.OutboxMessage:
    message = outbox.get_message(key)
    if message is None:
        raise Http404("No such message in the outbox.")
    return message


@operator_required
def outbox_index(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(outbox.list_paths(), PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = outbox.summarize(page.object_list)
    return render(request, "mailpanel/outbox_index.html", {"page_obj": page})


@operator_required
def outbox_message(request: HttpRequest, key: str) -> HttpResponse:
    return render(request, "mailpanel/outbox_message.html", {"message": _get_message(key)})


@operator_required
@xframe_options_sameorigin
def outbox_message_html(request: HttpRequest, key: str) -> HttpResponse:
    """The HTML part alone, for the sandboxed iframe of the message page."""
    message = _get_message(key)
    response = HttpResponse(message.html or "", content_type="text/html; charset=utf-8")
    # The mail's HTML is untrusted: no scripts, no same-origin access, no forms.
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src data: https: http:; "
        "style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    return response


@operator_required
def outbox_message_raw(request: HttpRequest, key: str) -> HttpResponse:
    message = _get_message(key)
    response = HttpResponse(message.raw, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{key}.eml"'
    return response


@operator_required
@require_POST
def outbox_clear(request: HttpRequest) -> HttpResponse:
    removed = outbox.delete_all()
    messages.success(request, f"Removed {removed} message(s) from the outbox.")
    return redirect("outbox")
