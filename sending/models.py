"""Relays, sending domains and the worker node registry.

Secrets (relay passwords, DKIM private keys) are stored encrypted with
mailpanel.lib.encryption; the model methods here are the only place that
decrypts them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailpanel.lib import encryption


class RelayQuerySet(models.QuerySet["Relay"]):
    def usable(self) -> RelayQuerySet:
        """Enabled relays that are not cooling down after failures."""
        now = timezone.now()
        return self.filter(enabled=True).filter(
            Q(cooldown_until__isnull=True) | Q(cooldown_until__lte=now)
        )

    def for_account(self, account: object) -> RelayQuerySet:
        """The relays an account sends through: its dedicated ones, else the shared pool."""
        # Whether the account is restricted is decided on all its enabled relays, not on
        # this (often usable()) queryset: while its dedicated relays cool down, its mail
        # waits for them instead of leaking into the shared pool.
        if Relay.objects.filter(accounts=account, enabled=True).exists():
            return self.filter(accounts=account)
        return self.filter(accounts__isnull=True)


class Relay(models.Model):
    class Security(models.TextChoices):
        NONE = "none", "None (plain SMTP)"
        STARTTLS = "starttls", "STARTTLS"
        TLS = "tls", "TLS (implicit, e.g. port 465)"

    name = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(max_length=16, choices=Security.choices, default=Security.STARTTLS)
    username = models.CharField(max_length=200, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    max_connections = models.PositiveIntegerField(
        default=4, help_text="Open SMTP connections to this relay across all workers."
    )
    rate_per_second = models.FloatField(
        default=50, help_text="Messages per second across all workers (a shared token bucket)."
    )
    weight = models.PositiveIntegerField(
        default=100, help_text="Share of the traffic relative to the other relays."
    )
    spf_include = models.CharField(
        max_length=253,
        blank=True,
        help_text="What a sender domain's SPF record must include for this relay, "
        "e.g. include:_spf.relay.example or ip4:192.0.2.10.",
    )
    enabled = models.BooleanField(default=True)
    accounts = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="dedicated_relays",
        help_text="If set, these accounts send only through their dedicated relays, and "
        "other accounts do not use this one.",
    )
    # Health: a relay that fails is taken out for a cool-down and its work moves on.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    cooldown_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RelayQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    def set_password(self, password: str) -> None:
        self.password_encrypted = encryption.encrypt(password)

    def get_password(self) -> str:
        return encryption.decrypt(self.password_encrypted)


class SendingDomainQuerySet(models.QuerySet["SendingDomain"]):
    def visible_to(self, user: object) -> SendingDomainQuerySet:
        """The domains a user manages in the panel: their account's own."""
        return self.filter(account=user)

    def usable_by(self, account_id: int | None) -> SendingDomainQuerySet:
        """Verified domains an account may send from: its own and the operators' ones."""
        return self.filter(verified_at__isnull=False).filter(
            Q(account=account_id) | Q(account__isnull=True)
        )


class SendingDomain(models.Model):
    """A domain mail may be sent from, with its DKIM keys and DNS checks."""

    class Algorithm(models.TextChoices):
        RSA = "rsa-sha256", "RSA-2048"
        ED25519 = "ed25519-sha256", "Ed25519"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sending_domains",
        help_text="Empty: any account may send from this domain (operators' domains).",
    )
    domain = models.CharField(max_length=253)
    selector = models.CharField(max_length=63, default="mailpanel")
    private_key_encrypted = models.TextField(editable=False)
    # Optional second signature (RFC 8463), under its own selector.
    ed25519_selector = models.CharField(max_length=63, blank=True)
    ed25519_key_encrypted = models.TextField(blank=True, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check = models.JSONField(default=dict, blank=True, editable=False)
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SendingDomainQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["account", "domain"], name="sendingdomain_unique"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=Q(account__isnull=True),
                name="sendingdomain_unique_global",
            ),
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def verified(self) -> bool:
        return self.verified_at is not None

    def private_key_pem(self) -> str:
        return encryption.decrypt(self.private_key_encrypted)

    def ed25519_key_pem(self) -> str:
        return encryption.decrypt(self.ed25519_key_encrypted)


class NodeQuerySet(models.QuerySet["Node"]):
    def alive(self) -> NodeQuerySet:
        return self.filter(stopped_at__isnull=True, heartbeat_at__gte=Node.lost_cutoff())


class Node(models.Model):
    """A Celery worker process that registered itself; operators can disable it."""

    name = models.CharField(max_length=255, unique=True, help_text="Celery's node name.")
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(default=1)
    version = models.CharField(max_length=50)
    enabled = models.BooleanField(
        default=True,
        help_text="A disabled node finishes its current work and takes no more send work.",
    )
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    activity = models.CharField(max_length=300, blank=True)
    consuming_send = models.BooleanField(default=False)
    messages_sent = models.PositiveBigIntegerField(default=0)
    messages_per_second = models.FloatField(default=0)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def lost_cutoff(cls) -> object:
        # Three missed heartbeats and a node is shown as lost.
        return timezone.now() - timedelta(seconds=3 * settings.NODE_HEARTBEAT_SECONDS)

    @property
    def state(self) -> str:
        if self.stopped_at is not None:
            return "stopped"
        if self.heartbeat_at < self.lost_cutoff():
            return "lost"
        return "running" if self.enabled else "disabled"


class SendBatch(models.Model):
    """A range of subscriber ids of one campaign's audience, sent by one worker at a time.

    PLANNED batches wait for their release time (gradual sending); QUEUED ones have a
    task on the send queue (``enqueued_at`` empty: parked by a pause, re-enqueued by
    the dispatcher tick); SENDING ones are claimed under a lease; DONE is final.

    An AUDIENCE batch sends whoever of the audience is in its id range; a RETRY batch
    sends only the deferred deliveries the dispatcher handed to it (its id range is
    just their span, and holds recipients of batches that may not be released yet).
    """

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        DONE = "done", "Done"

    class Kind(models.TextChoices):
        AUDIENCE = "audience", "Audience range"
        RETRY = "retry", "Retry of deferred deliveries"

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="send_batches"
    )
    first_subscriber_id = models.BigIntegerField()
    last_subscriber_id = models.BigIntegerField()
    size = models.PositiveIntegerField(help_text="Recipients when planned.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLANNED)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.AUDIENCE)
    release_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)
    node = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "first_subscriber_id"]
        indexes = [
            models.Index(
                fields=["status", "release_at"],
                condition=~Q(status="done"),
                name="sendbatch_open",
            ),
            models.Index(fields=["campaign", "status"], name="sendbatch_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} of campaign {self.campaign_id}: {self.status}"


class Delivery(models.Model):
    """One message of a campaign to one subscriber; the unique row that prevents a second.

    Written as QUEUED when a batch takes the recipient, SENDING just before a group of
    messages is handed to SMTP, then SENT / FAILED / DEFERRED / UNKNOWN in bulk.
    A SENDING row found by a re-plan was maybe accepted by the relay: it becomes
    UNKNOWN and is never sent again (a duplicate is worse than a visible unknown).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Handed to SMTP"
        SENT = "sent", "Sent"
        DEFERRED = "deferred", "Deferred (temporary failure, will retry)"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown (connection lost after the message)"
        SKIPPED = "skipped", "Skipped (unsubscribed or blocked meanwhile)"

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="deliveries"
    )
    subscriber = models.ForeignKey(
        "lists.Subscriber", on_delete=models.CASCADE, related_name="deliveries"
    )
    batch = models.ForeignKey(
        SendBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    relay = models.ForeignKey(
        Relay, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    smtp_response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "subscriber"], name="delivery_unique_per_campaign"
            )
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="delivery_campaign_status"),
            # The live rate on the campaign page: messages sent in the last minute.
            models.Index(fields=["campaign", "sent_at"], name="delivery_campaign_sent_at"),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="deferred"),
                name="delivery_deferred_due",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id}: {self.status}"


class RecipientDomainLimitQuerySet(models.QuerySet["RecipientDomainLimit"]):
    def active(self) -> RecipientDomainLimitQuerySet:
        return self.filter(enabled=True)


class RecipientDomainLimit(models.Model):
    """At most ``per_minute`` messages a minute to one recipient domain, across all workers
    (mailbox providers throttle or block senders that exceed what they accept)."""

    domain = models.CharField(max_length=253, unique=True, help_text="e.g. gmail.com")
    per_minute = models.PositiveIntegerField(help_text="Messages per minute, all workers together.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RecipientDomainLimitQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.CheckConstraint(
                condition=Q(per_minute__gt=0), name="recipientdomainlimit_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.domain}: {self.per_minute} per minute"
