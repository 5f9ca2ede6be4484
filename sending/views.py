from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from campaigns import access
from sending.templatetags.sending_progress import send_progress


@login_required
@require_GET
def campaign_progress(request: HttpRequest, campaign_id: uuid.UUID) -> HttpResponse:
    """The progress panel of a campaign page, polled while the campaign sends."""
    campaign = access.get_campaign(request, campaign_id)
    return render(request, "sending/_progress.html", send_progress(campaign))
