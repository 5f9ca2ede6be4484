from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from campaigns import media
from campaigns.models import MediaFile


@login_required
@require_POST
def media_upload(request: HttpRequest) -> HttpResponse:
    """The editor's image upload (CKEditor's simple upload adapter: field "upload")."""
    upload = request.FILES.get("upload")
    if upload is None:
        return JsonResponse({"error": {"message": "No file was sent."}}, status=400)
    try:
        item = media.add_image(request.user, upload)
    except media.MediaRefused as exc:
        return JsonResponse({"error": {"message": str(exc)}}, status=400)
    return JsonResponse({"url": media.public_url(item)})


@login_required
@require_GET
def media_index(request: HttpRequest) -> HttpResponse:
    files = MediaFile.objects.owned_by(request.user)[:200]
    items = [(f, media.public_url(f)) for f in files]
    return render(request, "campaigns/media_index.html", {"items": items})
