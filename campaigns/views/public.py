"""Public pages (no login): a campaign's web version, an account's archive, and the
media library's images as mail clients load them."""

from __future__ import annotations

import uuid

from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from campaigns import preview
from campaigns.models import Campaign, MediaFile
from campaigns.sandbox import SANDBOX_CSP, sandboxed
from stats import tracking

PUBLISHED = (Campaign.Status.SENDING, Campaign.Status.PAUSED, Campaign.Status.SENT)
# A campaign cancelled after it started may have mailed part of its audience: their
# "view in browser" links must keep working. One cancelled before it started mailed nobody.
HAS_WEB_VERSION = Q(status__in=PUBLISHED) | Q(
    status=Campaign.Status.CANCELLED, started_at__isnull=False
)


@require_GET
def web_version(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    campaign = get_object_or_404(
        Campaign.objects.filter(HAS_WEB_VERSION), uuid=campaign_id, frozen_at__isnull=False
    )
    if request.GET.get("t"):
        # The message's "view in browser" link carries the recipient's tracking token.
        tracking.take_web_open(campaign.pk, request.GET["t"], request.META)
    return sandboxed(preview.web_version(campaign))


@require_GET
def archive(request: HttpRequest, token: str) -> HttpResponse:
    account_id = preview.archive_account_id(token)
    if account_id is None:
        raise Http404
    campaigns = Campaign.objects.filter(
        account_id=account_id,
        status=Campaign.Status.SENT,
        publish_in_archive=True,
        frozen_at__isnull=False,
    ).order_by("-finished_at", "-id")
    if not campaigns:
        raise Http404
    response = render(request, "campaigns/archive.html", {"campaigns": campaigns})
    response["Content-Security-Policy"] = SANDBOX_CSP + "; frame-ancestors 'none'"
    return response


@require_GET
def media_file(request: HttpRequest, media_id: uuid.UUID, name: str) -> HttpResponse:
    item = get_object_or_404(MediaFile, uuid=media_id)
    try:
        handle = item.file.open("rb")
    except OSError:
        raise Http404 from None
    response = FileResponse(handle, content_type=item.content_type)
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
