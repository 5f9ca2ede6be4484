"""Design templates, campaigns and what freezing a campaign stores.

Tenancy: every object belongs to an account (a user); panel code reaches them
through the ``owned_by`` queryset methods here. Campaigns are owner-only: a
manager delegated one list does not see the owner's campaigns.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class EmailTemplateQuerySet(models.QuerySet["EmailTemplate"]):
    def owned_by(self, user: object) -> EmailTemplateQuerySet:
        return self.filter(account=user)


class EmailTemplate(models.Model):
    """A whole e-mail document with a ``{{ content }}`` placeholder for the body."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_templates"
    )
    name = models.CharField(max_length=200)
    html = models.TextField(help_text="A whole HTML document; {{ content }} marks the body.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EmailTemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def owned_by(self, user: object) -> CampaignQuerySet:
        return self.filter(account=user)


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    class BodyFormat(models.TextChoices):
        WYSIWYG = "wysiwyg", "Rich text editor"
        HTML = "html", "Raw HTML"
        MARKDOWN = "markdown", "Markdown"
        TEXT = "text", "Plain text"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaigns"
    )
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300, blank=True)
    preheader = models.CharField(max_length=300, blank=True)
    from_name = models.CharField("sender name", max_length=200, blank=True)
    from_email = models.EmailField("sender address", blank=True)
    reply_to = models.EmailField(blank=True)
    lists = models.ManyToManyField("lists.MailingList", related_name="campaigns", blank=True)
    segment = models.ForeignKey(
        "lists.Segment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    template = models.ForeignKey(
        EmailTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaigns"
    )
    body = models.TextField(blank=True)
    body_format = models.CharField(
        max_length=16, choices=BodyFormat.choices, default=BodyFormat.WYSIWYG
    )
    # The plain-text part: generated from the HTML unless the owner edited it.
    text_body = models.TextField("plain-text part", blank=True)
    text_edited = models.BooleanField(default=False)
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    send_at = models.DateTimeField(null=True, blank=True)
    # Gradual sending, obeyed by the sending engine: at most one of them is usually set.
    spread_over_hours = models.PositiveIntegerField(null=True, blank=True)
    max_per_hour = models.PositiveIntegerField(null=True, blank=True)
    publish_in_archive = models.BooleanField(default=False)
    # The audience size when the draft was last saved or scheduled (campaigns.audience.
    # remember_count): the campaign index shows it without counting every campaign's
    # audience per view. Once sending starts the planned batches are the number instead.
    audience_size = models.PositiveIntegerField(null=True, blank=True, editable=False)

    # The frozen form (campaigns.freezing): what the sending engine reads. Empty while a
    # draft; written once when the campaign is scheduled or started.
    frozen_subject = models.TextField(blank=True)
    frozen_html = models.TextField(blank=True)
    frozen_text = models.TextField(blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The dispatcher's "what is due" scan touches only scheduled rows.
            models.Index(
                fields=["send_at"],
                condition=Q(status="scheduled"),
                name="campaign_due",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.status in (self.Status.DRAFT, self.Status.SCHEDULED)

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


class Link(models.Model):
    """A tracked link of a frozen campaign, numbered from 1 in document order."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    index = models.PositiveIntegerField()
    url = models.TextField()

    class Meta:
        ordering = ["campaign", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="link_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.index}: {self.url}"


def _attachment_path(instance: Attachment, filename: str) -> str:
    return f"attachments/{instance.campaign.uuid}/{uuid.uuid4().hex}/{filename}"


class Attachment(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=_attachment_path, max_length=300)
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=200)
    # The whole MIME part (headers and base64 body), made once at freeze.
    encoded_part = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name


def _media_path(instance: MediaFile, filename: str) -> str:
    return f"media-library/{instance.account_id}/{uuid.uuid4().hex}/{filename}"


class MediaFileQuerySet(models.QuerySet["MediaFile"]):
    def owned_by(self, user: object) -> MediaFileQuerySet:
        return self.filter(account=user)


class MediaFile(models.Model):
    """An image in an account's library, uploaded from the editor."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="media_files"
    )
    file = models.FileField(upload_to=_media_path, max_length=300)
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MediaFileQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
