"""The one way panel views reach campaign objects: owner-only, 404 for anyone else.

Campaigns are owner-only on purpose: a manager delegated one list does not see the
account's campaigns (they may span lists the delegate has no access to).
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from campaigns.models import Attachment, Campaign, EmailTemplate, MediaFile


def get_campaign(request: HttpRequest, campaign_id: uuid.UUID) -> Campaign:
    return get_object_or_404(Campaign.objects.owned_by(request.user), uuid=campaign_id)


def get_template(request: HttpRequest, template_id: uuid.UUID) -> EmailTemplate:
    return get_object_or_404(EmailTemplate.objects.owned_by(request.user), uuid=template_id)


def get_attachment(
    request: HttpRequest, campaign: Campaign, attachment_id: uuid.UUID
) -> Attachment:
    return get_object_or_404(Attachment, campaign=campaign, uuid=attachment_id)


def get_media(request: HttpRequest, media_id: uuid.UUID) -> MediaFile:
    return get_object_or_404(MediaFile.objects.owned_by(request.user), uuid=media_id)
