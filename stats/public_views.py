"""The public tracking endpoints (no login): the open pixel and the click redirect.

Thin on purpose: they serve every recipient of every campaign, so each does one token
check and one call into stats.tracking. A bad or foreign token, or a link index the
campaign does not have, gets a short page and no redirect: a click only ever goes to
a link stored when the campaign was frozen, never to a URL taken from the request.
"""

from __future__ import annotations

import base64
import logging

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_safe

from stats import tracking

logger = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_CACHE = "no-store, no-cache, must-revalidate, private, max-age=0"
NOT_VALID = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Link not valid</title>"
    "</head><body style='font-family:sans-serif;max-width:32rem;margin:4rem auto'>"
    "<h1>This link is not valid</h1><p>It may have been changed or cut off in transit. "
    "Try opening it again from the original message.</p></body></html>"
)


def _not_valid() -> HttpResponse:
    response = HttpResponse(NOT_VALID, status=404)
    response["Cache-Control"] = NO_CACHE
    return response


def _keep(request: HttpRequest, kind: str, ids: tuple[int, int], index: int = 0) -> None:
    if request.method != "GET":
        return  # HEAD is what link checkers send: answered, not counted
    hit = tracking.make_hit(kind, ids[0], ids[1], index, request.META)
    try:
        tracking.take(hit)
    except Exception:  # the recipient still gets the image or the page they asked for
        logger.exception("could not keep a tracking hit")


@require_safe
def opened(request: HttpRequest, token: str) -> HttpResponse:
    ids = tracking.read_token(token)
    if ids is None:
        return _not_valid()
    _keep(request, tracking.OPEN, ids)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = NO_CACHE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_safe
def clicked(request: HttpRequest, token: str, index: int) -> HttpResponse:
    ids = tracking.read_token(token)
    target = tracking.link_target(ids[0], index) if ids else None
    if ids is None or target is None:
        return _not_valid()
    _keep(request, tracking.CLICK, ids, index)
    response = HttpResponseRedirect(target)
    response["Cache-Control"] = NO_CACHE
    return response
