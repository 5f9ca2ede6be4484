"""Bounce events, quarantined input, bounce mailboxes, per-account rules and sender-side alerts.

Every inbound path (pipe, LMTP/SMTP receiver, polled mailbox, ESP webhook, a 5xx at our own
relay) ends as one BounceEvent row, stored with its raw input before any rule acts on it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from bounces import rules
from mailpanel.lib import encryption


class Source(models.TextChoices):
    PIPE = "pipe", "Pipe command"
    MAILBOX = "mailbox", "Polled mailbox"
    LMTP = "lmtp", "LMTP/SMTP receiver"
    WEBHOOK = "webhook", "ESP webhook"
    SMTP = "smtp", "Relay reply"


class BounceClass(models.TextChoices):
    HARD = rules.HARD, "Hard bounce"
    SOFT = rules.SOFT, "Soft bounce"
    SENDER_SIDE = rules.SENDER_SIDE, "Refused because of the sender"
    COMPLAINT = rules.COMPLAINT, "Complaint"
    UNSUBSCRIBE_REQUEST = rules.UNSUBSCRIBE_REQUEST, "Unsubscribe request"
    AUTH_FAILURE_REPORT = rules.AUTH_FAILURE_REPORT, "Authentication failure report"
    NOT_A_FAILURE = rules.NOT_A_FAILURE, "Not a failure"


class ReturnedMessage(models.Model):
    """A returned message as it arrived, stored once however many recipients it reports.

    The bytes are kept as they came (NUL bytes and broken encodings included): a text column
    would refuse some of them on Postgres, and a copy per event multiplied a small DSN that
    lists thousands of recipients into gigabytes.
    """

    source = models.CharField(max_length=16, choices=Source.choices)
    received_at = models.DateTimeField(db_index=True)
    raw = models.BinaryField(editable=False)
    envelope_recipient = models.CharField(max_length=254, blank=True)
    recipients_found = models.PositiveIntegerField(
        default=0, help_text="Failed recipients the message reports."
    )
    recipients_recorded = models.PositiveIntegerField(
        default=0, help_text="Of those, how many became events (the rest were over the cap)."
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} at {self.received_at:%Y-%m-%d %H:%M}"

    def raw_text(self) -> str:
        return bytes(self.raw).decode("utf-8", errors="replace")


class BounceEventQuerySet(models.QuerySet["BounceEvent"]):
    def visible_to(self, user: object) -> BounceEventQuerySet:
        """Events of the user's account, and of subscribers on lists delegated to the user."""
        from lists.models import Subscriber

        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(
            Q(account=user) | Q(subscriber__in=Subscriber.objects.visible_to(user))
        ).distinct()


class BounceEvent(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices)
    provider = models.CharField(max_length=32, blank=True, help_text="ses, mailgun, ...")
    provider_event_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(db_index=True)
    delivery = models.ForeignKey(
        "sending.Delivery",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bounce_events",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bounce_events",
    )
    # The owner the event belongs to: tenancy of every bounce page starts here.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="bounce_events",
    )
    subscriber = models.ForeignKey(
        "lists.Subscriber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bounce_events",
    )
    recipient = models.CharField(max_length=254, blank=True)
    bounce_class = models.CharField(max_length=24, choices=BounceClass.choices)
    status_code = models.CharField(max_length=16, blank=True, help_text="RFC 3463, e.g. 5.1.1")
    reply_code = models.CharField(max_length=8, blank=True, help_text="SMTP reply, e.g. 550")
    diagnostic = models.TextField(blank=True)
    receiving_domain = models.CharField(max_length=253, blank=True)
    relay = models.ForeignKey(
        "sending.Relay",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bounce_events",
    )
    # A returned message is stored once, in ReturnedMessage; raw holds what is small and per
    # event: the provider payload, our relay's reply (and, on old rows, the whole message).
    message = models.ForeignKey(
        ReturnedMessage,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
    )
    raw = models.TextField(blank=True, help_text="The provider payload or the relay's reply.")
    applied = models.BooleanField(default=False, help_text="The rules have run on this event.")

    objects = BounceEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_event_id"],
                condition=~Q(provider_event_id=""),
                name="bounceevent_unique_provider_event",
            )
        ]
        indexes = [
            models.Index(fields=["campaign", "bounce_class"], name="bounceevent_campaign_class"),
            models.Index(fields=["subscriber", "received_at"], name="bounceevent_subscriber"),
            models.Index(fields=["account", "received_at"], name="bounceevent_account"),
        ]

    def __str__(self) -> str:
        return f"{self.bounce_class} {self.recipient or '?'} ({self.source})"

    @property
    def reason(self) -> str:
        """A short label to group events by: the status code, else the SMTP reply code."""
        return self.status_code or self.reply_code or "no code"

    def raw_text(self) -> str:
        """The returned message or the payload this event came from."""
        return self.message.raw_text() if self.message_id else self.raw


class QuarantinedMessage(models.Model):
    """Input that no rule could act on: kept whole for an operator, never dropped."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        REPROCESSED = "reprocessed", "Reprocessed"
        DISCARDED = "discarded", "Discarded"

    source = models.CharField(max_length=16, choices=Source.choices)
    provider = models.CharField(max_length=32, blank=True)
    # A provider's event id, when the bad input had one: a replay is not kept twice.
    provider_event_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    raw = models.BinaryField(editable=False)
    envelope_recipient = models.CharField(max_length=254, blank=True)
    reason = models.TextField(help_text="What was wrong with it.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="quarantine_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_event_id"],
                condition=~Q(provider_event_id=""),
                name="quarantine_unique_provider_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} at {self.received_at:%Y-%m-%d %H:%M}: {self.reason}"

    def raw_text(self) -> str:
        return bytes(self.raw).decode("utf-8", errors="replace")


class ProviderEventReceipt(models.Model):
    """An ESP event counted somewhere that keeps no provider ids: a delivery report, which
    goes to the statistics log. Written in the same transaction as the log row, so a replayed
    post counts it once."""

    provider = models.CharField(max_length=32)
    provider_event_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_event_id"], name="providereventreceipt_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.provider_event_id}"


class BounceMailbox(models.Model):
    """A mailbox that receives bounces and is polled over IMAP or POP3."""

    class Protocol(models.TextChoices):
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"

    class Security(models.TextChoices):
        NONE = "none", "None"
        STARTTLS = "starttls", "STARTTLS"
        TLS = "tls", "TLS"

    class AfterProcessing(models.TextChoices):
        DELETE = "delete", "Delete the message"
        MOVE = "move", "Move it to a folder (IMAP)"

    name = models.CharField(max_length=100, unique=True)
    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.IMAP)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=16, choices=Security.choices, default=Security.TLS)
    username = models.CharField(max_length=200)
    password_encrypted = models.TextField(blank=True, editable=False)
    folder = models.CharField(max_length=200, default="INBOX", help_text="IMAP only.")
    after_processing = models.CharField(
        max_length=8, choices=AfterProcessing.choices, default=AfterProcessing.DELETE
    )
    move_to_folder = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "bounce mailboxes"

    def __str__(self) -> str:
        return f"{self.name} ({self.protocol}://{self.host}:{self.port})"

    def set_password(self, password: str) -> None:
        self.password_encrypted = encryption.encrypt(password)

    def get_password(self) -> str:
        return encryption.decrypt(self.password_encrypted)


class SuppressionPolicy(models.Model):
    """An account's bounce rules; an account without a row uses the defaults.

    The sender-side alert threshold is not here: refusals are counted per relay and receiving
    domain across all accounts, so it is the operators' setting
    (BOUNCE_SENDER_SIDE_ALERT_THRESHOLD).
    """

    DEFAULT_SOFT_BOUNCE_DAYS = 3
    DEFAULT_SOFT_BOUNCE_WINDOW_DAYS = 14
    MAX_SOFT_BOUNCE_DAYS = 30
    MAX_SOFT_BOUNCE_WINDOW_DAYS = 365

    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suppression_policy"
    )
    suppress_hard = models.BooleanField(default=True)
    suppress_complaint = models.BooleanField(default=True)
    soft_bounce_days = models.PositiveSmallIntegerField(
        default=DEFAULT_SOFT_BOUNCE_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SOFT_BOUNCE_DAYS)],
        help_text="Suppress after soft bounces on this many distinct days...",
    )
    soft_bounce_window_days = models.PositiveSmallIntegerField(
        default=DEFAULT_SOFT_BOUNCE_WINDOW_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SOFT_BOUNCE_WINDOW_DAYS)],
        help_text="...within this many days.",
    )

    class Meta:
        verbose_name_plural = "suppression policies"

    def __str__(self) -> str:
        return f"rules of {self.account}"

    def clean(self) -> None:
        if (self.soft_bounce_days or 0) > (self.soft_bounce_window_days or 0):
            # N distinct days cannot fit in fewer than N days: the rule would never fire.
            raise ValidationError(
                {"soft_bounce_days": "Cannot be more than the days of the window."}
            )

    @classmethod
    def for_account(cls, account_id: int | None) -> SuppressionPolicy:
        """The account's row, or an unsaved one with the defaults."""
        policy = cls.objects.filter(account_id=account_id).first() if account_id else None
        return policy or cls(account_id=account_id)


class SenderSideCounter(models.Model):
    """Refusals of the sender, per relay, receiving domain and day."""

    relay = models.ForeignKey(
        "sending.Relay", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    receiving_domain = models.CharField(max_length=253)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "-count"]
        constraints = [
            models.UniqueConstraint(
                fields=["relay", "receiving_domain", "day"], name="sendersidecounter_unique"
            ),
            # NULL relays are distinct to a plain unique constraint.
            models.UniqueConstraint(
                fields=["receiving_domain", "day"],
                condition=Q(relay__isnull=True),
                name="sendersidecounter_unique_norelay",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.relay or 'no relay'} -> {self.receiving_domain} on {self.day}: {self.count}"


class SenderSideAlert(models.Model):
    """Raised once a day per relay and receiving domain when refusals cross the threshold."""

    counter = models.OneToOneField(
        SenderSideCounter, on_delete=models.CASCADE, related_name="alert"
    )
    raised_at = models.DateTimeField(auto_now_add=True)
    count_at_raise = models.PositiveIntegerField()
    sample_diagnostic = models.TextField(blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return f"sender refused: {self.counter}"


# The mailbox poller's own bookkeeping (bounces/mailboxes.py).


class MailboxReceipt(models.Model):
    """A message a poll stored: the next run removes it from the server without storing it
    again if the run that stored it stopped before removing it."""

    mailbox = models.ForeignKey(BounceMailbox, on_delete=models.CASCADE, related_name="receipts")
    key = models.CharField(max_length=64, help_text="sha256 of the raw message")
    message_id = models.CharField(max_length=255, blank=True)
    stored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "key"], name="mailboxreceipt_unique")
        ]
        indexes = [models.Index(fields=["mailbox", "stored_at"], name="mailboxreceipt_stored")]

    def __str__(self) -> str:
        return f"{self.mailbox.name}: {self.message_id or self.key[:12]}"


class MailboxLease(models.Model):
    """Who polls a mailbox right now: one worker at a time, until expires_at."""

    mailbox = models.OneToOneField(
        BounceMailbox, on_delete=models.CASCADE, primary_key=True, related_name="lease"
    )
    holder = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.mailbox.name} until {self.expires_at}"


class ReceiverReceipt(models.Model):
    """A message the LMTP/SMTP receiver stored for one envelope recipient.

    An SMTP client that got a 4xx for one recipient resends the message to all of them; the
    receipt, committed with the stored message, makes the resend store only what is missing.
    """

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of recipient and message")
    stored_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.key[:12]} at {self.stored_at}"
