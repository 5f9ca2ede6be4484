"""The per-account image library the editor uploads to."""

from __future__ import annotations

from pathlib import PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from campaigns.models import MediaFile

# SVG is left out on purpose: it can carry scripts.
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class MediaRefused(ValueError):
    """The upload is not an image the library accepts."""


def add_image(account: object, upload: UploadedFile) -> MediaFile:
    """Stores an uploaded image; raises MediaRefused. The type comes from the bytes."""
    if upload.size > settings.CAMPAIGN_MEDIA_MAX_BYTES:
        raise MediaRefused("The image is too large.")
    try:
        with Image.open(upload) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise MediaRefused("The file is not an image (PNG, JPEG, GIF or WebP).") from None
    if kind not in IMAGE_TYPES:
        raise MediaRefused("Only PNG, JPEG, GIF and WebP images can be uploaded.")
    upload.seek(0)
    name = PurePath(upload.name or "image").name[:200]
    media = MediaFile(account=account, name=name, size=upload.size, content_type=IMAGE_TYPES[kind])
    media.file.save(name, upload, save=False)
    media.save()
    return media


def public_url(media: MediaFile) -> str:
    """An absolute URL: the image is shown in recipients' mail clients."""
    from django.urls import reverse

    path = reverse("campaign_public:media", args=[media.uuid, media.name])
    return settings.SITE_URL.rstrip("/") + path
