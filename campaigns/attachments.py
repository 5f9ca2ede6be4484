"""Files attached to a campaign: limits per file and in total, dangerous types refused."""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat

from campaigns.models import Attachment, Campaign

# Executables, scripts and active documents: mail filters reject them and they hurt people.
DANGEROUS_EXTENSIONS = {
    "exe",
    "js",
    "mjs",
    "bat",
    "cmd",
    "scr",
    "vbs",
    "vbe",
    "jse",
    "wsf",
    "wsh",
    "jar",
    "msi",
    "msp",
    "com",
    "ps1",
    "psm1",
    "hta",
    "html",
    "htm",
    "xhtml",
    "svg",
    "lnk",
    "pif",
    "cpl",
    "reg",
    "dll",
    "sh",
    "app",
    "dmg",
    "iso",
    "apk",
    "chm",
}


class AttachmentRefused(ValueError):
    """The file cannot be attached; the message says why, for the owner."""


def _extensions(name: str) -> set[str]:
    # "invoice.pdf.exe" is an .exe, and so is "invoice.exe.pdf" to some mail filters.
    return {suffix.lstrip(".").lower() for suffix in PurePath(name).suffixes}


def add(campaign: Campaign, upload: UploadedFile) -> Attachment:
    """Stores an uploaded file on the campaign; raises AttachmentRefused."""
    name = PurePath(upload.name or "attachment").name[:200]
    dangerous = _extensions(name) & DANGEROUS_EXTENSIONS
    if dangerous:
        raise AttachmentRefused(f"Files of type .{sorted(dangerous)[0]} cannot be attached.")
    max_file = settings.CAMPAIGN_ATTACHMENT_MAX_FILE_BYTES
    max_total = settings.CAMPAIGN_ATTACHMENT_MAX_TOTAL_BYTES
    if upload.size > max_file:
        raise AttachmentRefused(
            f"{name} is {filesizeformat(upload.size)}; the limit per file is "
            f"{filesizeformat(max_file)}."
        )
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with transaction.atomic():
        # Locks the campaign row so two uploads at once cannot both pass the total.
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        used = campaign.attachments.aggregate(total=Sum("size"))["total"] or 0
        if used + upload.size > max_total:
            raise AttachmentRefused(
                f"Attachments may total {filesizeformat(max_total)}; "
                f"{filesizeformat(used)} is already used."
            )
        attachment = Attachment(
            campaign=campaign, name=name, size=upload.size, content_type=content_type
        )
        attachment.file.save(name, upload, save=False)
        attachment.save()
    return attachment


def remove(attachment: Attachment) -> None:
    shared = Attachment.objects.filter(file=attachment.file.name).exclude(pk=attachment.pk)
    if not shared.exists():  # duplicates share the stored file
        attachment.file.delete(save=False)
    attachment.delete()
