"""The event log, its rollups, and the heavy reports' jobs.

``TrackingEvent`` is append-only and, on Postgres, partitioned by month on ``occurred_at``
(declarative partitioning, made by this app's migration; beat creates the months ahead).
Its references are plain columns without foreign-key constraints: a constraint would make
every insert check five tables and would stop an old month from being detached and archived
on its own. Dashboards never read the log: they read the rollups, which the drain task
updates once per drained chunk and campaign, not once per event.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class TrackingEvent(models.Model):
    class Kind(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed at the relay"
        # The connection died after the message: maybe delivered, never sent again.
        UNKNOWN = "unknown", "Unknown (connection lost after the message)"
        DELIVERED = "delivered", "Delivered (reported by the ESP)"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    mailing_list = models.ForeignKey(
        "lists.MailingList",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    subscriber = models.ForeignKey(
        "lists.Subscriber",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    delivery = models.ForeignKey(
        "sending.Delivery",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    relay = models.ForeignKey(
        "sending.Relay",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    # The receiving domain of the recipient: the failure report groups by it.
    recipient_domain = models.CharField(max_length=253, blank=True)
    link_index = models.PositiveIntegerField(null=True)
    # Apple Mail Privacy Protection, image proxies, link scanners (stats/machines.py).
    machine = models.BooleanField(default=False)
    # Small: bounce class, unsubscribe reason, user agent family, hashed IP.
    details = models.JSONField(default=dict)

    class Meta:
        # No index is declared here: the migration makes them on Postgres per partition, each
        # serving one report (see stats/migrations).
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.occurred_at:%Y-%m-%d %H:%M}"


class DeliveryEngagement(models.Model):
    """Per delivery: the first open and click, and how many. Unique counts come from here,
    upserted in bulk by the drain, so counting a unique open never scans the log."""

    delivery = models.OneToOneField(
        "sending.Delivery",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        primary_key=True,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    subscriber = models.ForeignKey(
        "lists.Subscriber", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    first_human_open_at = models.DateTimeField(null=True)
    first_machine_open_at = models.DateTimeField(null=True)
    first_human_click_at = models.DateTimeField(null=True)
    first_machine_click_at = models.DateTimeField(null=True)
    human_opens = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    human_clicks = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # Engagement segments: "opened / clicked within N days".
            models.Index(fields=["subscriber", "first_human_open_at"], name="engagement_open"),
            models.Index(fields=["subscriber", "first_human_click_at"], name="engagement_click"),
        ]

    def __str__(self) -> str:
        return f"engagement of delivery {self.delivery_id}"


class LinkEngagement(models.Model):
    """Per delivery and tracked link: how many clicks. The drain upserts it in bulk to know
    whether a click is the recipient's first on that link (the per-link unique count)."""

    delivery = models.ForeignKey(
        "sending.Delivery", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    link_index = models.PositiveIntegerField()
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    human_clicks = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "link_index"], name="linkengagement_unique")
        ]

    def __str__(self) -> str:
        return f"link {self.link_index} of delivery {self.delivery_id}"


class DrainedChunk(models.Model):
    """A chunk of tracking hits taken from the Redis buffer and committed to the log.

    Written in the same transaction as the chunk's events: a drain that died after the
    commit but before clearing the buffer's processing list finds its chunk here and
    does not write it twice. Pruned after a day by the daily maintenance task.
    """

    key = models.CharField(max_length=64, primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"drained chunk {self.key}"


class CampaignStats(models.Model):
    """A campaign's key numbers, kept up to date by the drain and the sending engine."""

    campaign = models.OneToOneField(
        "campaigns.Campaign", on_delete=models.CASCADE, primary_key=True, related_name="stats"
    )
    recipients = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    unique_human_opens = models.PositiveIntegerField(default=0)
    total_human_opens = models.PositiveIntegerField(default=0)
    unique_machine_opens = models.PositiveIntegerField(default=0)
    total_machine_opens = models.PositiveIntegerField(default=0)
    unique_human_clicks = models.PositiveIntegerField(default=0)
    total_human_clicks = models.PositiveIntegerField(default=0)
    unique_machine_clicks = models.PositiveIntegerField(default=0)
    total_machine_clicks = models.PositiveIntegerField(default=0)
    hard_bounces = models.PositiveIntegerField(default=0)
    soft_bounces = models.PositiveIntegerField(default=0)
    sender_side_bounces = models.PositiveIntegerField(default=0)
    complaints = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "campaign statistics"

    def __str__(self) -> str:
        return f"statistics of campaign {self.campaign_id}"

    def rate(self, count: int) -> float:
        """count as a share of the messages sent (0 when nothing was sent)."""
        return count / self.sent if self.sent else 0.0


class LinkStats(models.Model):
    """Clicks per tracked link of a campaign (the per-link map on the campaign page)."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="link_stats"
    )
    link_index = models.PositiveIntegerField()
    unique_human_clicks = models.PositiveIntegerField(default=0)
    total_human_clicks = models.PositiveIntegerField(default=0)
    total_machine_clicks = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "link_index"], name="linkstats_unique")
        ]

    def __str__(self) -> str:
        return f"link {self.link_index} of campaign {self.campaign_id}"


class CampaignHourlyStats(models.Model):
    """Opens and clicks per hour since sending started (the first-48-hours chart)."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="hourly_stats"
    )
    hour = models.DateTimeField(help_text="The start of the hour, UTC.")
    human_opens = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    human_clicks = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["campaign", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "hour"], name="campaignhourly_unique")
        ]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id} at {self.hour:%Y-%m-%d %H}:00"


class CampaignDomainStats(models.Model):
    """Per campaign and receiving domain: the top-domains table of the campaign page."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="domain_stats"
    )
    domain = models.CharField(max_length=253)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    unique_human_opens = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "domain"], name="campaigndomain_unique")
        ]

    def __str__(self) -> str:
        return f"{self.domain} in campaign {self.campaign_id}"


class ListDailyStats(models.Model):
    """Per list and day: subscribed, confirmed, unsubscribed, bounced, and the size at the end."""

    mailing_list = models.ForeignKey(
        "lists.MailingList", on_delete=models.CASCADE, related_name="daily_stats"
    )
    day = models.DateField()
    subscribed = models.PositiveIntegerField(default=0)
    confirmed = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["mailing_list", "day"]
        constraints = [
            models.UniqueConstraint(fields=["mailing_list", "day"], name="listdaily_unique")
        ]

    def __str__(self) -> str:
        return f"list {self.mailing_list_id} on {self.day}"


class FailureReport(models.Model):
    """A heavy report run on demand: split into parts that run on any worker, then merged."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Empty: every account (operators only).
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="failure_reports",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    parts_total = models.PositiveIntegerField(default=0)
    parts_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    # Why it failed, in words its reader can act on (the workers' log has the traceback).
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When a part last finished: a report that stops moving is re-queued once, then failed
    # (stats.reports.enforce_deadline).
    progressed_at = models.DateTimeField(null=True, blank=True)
    requeued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"failure report {self.uuid}: {self.status}"


class FailureReportPart(models.Model):
    """One slice of a report (an id range of the log within the period) and its partial result."""

    report = models.ForeignKey(FailureReport, on_delete=models.CASCADE, related_name="parts")
    first_event_id = models.BigIntegerField()
    last_event_id = models.BigIntegerField()
    done = models.BooleanField(default=False)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["report", "first_event_id"]

    def __str__(self) -> str:
        return f"part {self.first_event_id}-{self.last_event_id} of {self.report_id}"
