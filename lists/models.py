"""Lists, subscribers and everything that hangs off them.

Tenancy: every object belongs to an account (a user). Panel code reaches objects
only through the ``visible_to`` / ``editable_by`` queryset methods here.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

# --- Lists and delegation ---------------------------------------------------------------


class ListRole(models.Model):
    """A list delegated by its owner to another user."""

    class Role(models.TextChoices):
        MANAGER = "manager", "Manager"
        VIEWER = "viewer", "Viewer"

    mailing_list = models.ForeignKey("MailingList", on_delete=models.CASCADE, related_name="roles")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="list_roles"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailing_list", "user"], name="listrole_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.mailing_list}"


class MailingListQuerySet(models.QuerySet["MailingList"]):
    def visible_to(self, user: object) -> MailingListQuerySet:
        """Lists the user owns or was granted any role on."""
        granted = ListRole.objects.filter(user=user).values("mailing_list_id")
        return self.filter(Q(owner=user) | Q(id__in=granted))

    def editable_by(self, user: object) -> MailingListQuerySet:
        """Lists the user may change: owned, or granted as manager."""
        managed = ListRole.objects.filter(user=user, role=ListRole.Role.MANAGER).values(
            "mailing_list_id"
        )
        return self.filter(Q(owner=user) | Q(id__in=managed))

    def owned_by(self, user: object) -> MailingListQuerySet:
        return self.filter(owner=user)


class MailingList(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mailing_lists"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    from_name = models.CharField("default sender name", max_length=200, blank=True)
    from_email = models.EmailField("default sender address", blank=True)
    reply_to = models.EmailField(blank=True)
    double_opt_in = models.BooleanField(
        default=True, help_text="New subscribers from forms must confirm by e-mail."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Subscriber counts per status, kept up to date by lists.subscriptions (a change of
    # one row adjusts them; bulk work recounts the list once). The list pages read these
    # instead of counting a million rows per view.
    pending_count = models.PositiveIntegerField(default=0)
    confirmed_count = models.PositiveIntegerField(default=0)
    unsubscribed_count = models.PositiveIntegerField(default=0)
    bounced_count = models.PositiveIntegerField(default=0)
    complained_count = models.PositiveIntegerField(default=0)

    # Public pages and subscriber mails (lists.confirmation holds the default texts).
    logo_url = models.URLField("logo URL", blank=True, max_length=500)
    brand_color = models.CharField("brand colour", max_length=7, default="#2563eb")
    # Text key -> the owner's wording; missing keys fall back to the defaults in code.
    texts = models.JSONField(default=dict, blank=True)
    welcome_enabled = models.BooleanField(
        "send a welcome mail", default=False, help_text="After a subscriber confirms."
    )
    # Tracking in campaigns to this list: a recipient on any target list with it off is not
    # tracked, whatever the campaign's other lists say (the sending engine decides per recipient).
    track_opens = models.BooleanField(
        "track opens", default=True, help_text="Adds an invisible image to campaigns."
    )
    track_clicks = models.BooleanField(
        "track clicks", default=True, help_text="Links go through mailpanel to be counted."
    )
    # Empty: campaigns to this list show the account's postal address.
    postal_address = models.TextField(
        "postal address",
        blank=True,
        help_text="Shown in the footer of campaigns to this list instead of your account's.",
    )

    objects = MailingListQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def total_count(self) -> int:
        return (
            self.pending_count
            + self.confirmed_count
            + self.unsubscribed_count
            + self.bounced_count
            + self.complained_count
        )

    def role_of(self, user: object) -> str | None:
        """ "owner", "manager", "viewer" or None for a user with no access."""
        if self.owner_id == getattr(user, "pk", None):
            return "owner"
        role = self.roles.filter(user=user).values_list("role", flat=True).first()
        return role


# --- Subscribers --------------------------------------------------------------------------


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    def visible_to(self, user: object) -> SubscriberQuerySet:
        """Subscribers of the user's account, and those on lists delegated to the user."""
        lists = MailingList.objects.visible_to(user).exclude(owner=user).values("id")
        on_granted = Subscription.objects.filter(mailing_list_id__in=lists).values("subscriber_id")
        return self.filter(Q(account=user) | Q(id__in=on_granted))

    def editable_by(self, user: object) -> SubscriberQuerySet:
        lists = MailingList.objects.editable_by(user).exclude(owner=user).values("id")
        on_managed = Subscription.objects.filter(mailing_list_id__in=lists).values("subscriber_id")
        return self.filter(Q(account=user) | Q(id__in=on_managed))

    def with_email(self, address: str) -> SubscriberQuerySet:
        """Matches case-insensitively, through the lower(email) index."""
        return self.alias(email_key=Lower("email")).filter(email_key=address.lower())


class Subscriber(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: subscriber_account_id (account, id) serves every account lookup,
    # and each index on this table is paid again by every row an import writes.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="subscribers",
        db_index=False,
    )
    # Normalised by lists.addresses.normalise before it is stored.
    email = models.CharField(max_length=254)
    # The lowercased ASCII domain, for blocklist, per-domain limits and statistics. Compared
    # for equality only, so one plain index (no LIKE-pattern twin, see Meta).
    domain = models.CharField(max_length=253)
    name = models.CharField(max_length=200, blank=True)
    # Custom field values by key, validated by lists.fields; JSON-plain values only.
    fields = models.JSONField(default=dict, blank=True)
    # How consent was given: time, ip, user agent, form, text shown, source.
    consent = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"), "account", name="subscriber_unique_email_per_account"
            )
        ]
        indexes = [
            models.Index(fields=["account", "id"], name="subscriber_account_id"),
            models.Index(fields=["domain"], name="subscriber_domain"),
        ]

    def __str__(self) -> str:
        return self.email


class SubscriptionQuerySet(models.QuerySet["Subscription"]):
    def sendable(self) -> SubscriptionQuerySet:
        return self.filter(status=Subscription.Status.CONFIRMED)


class Subscription(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CONFIRMED = "confirmed", "Confirmed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class Source(models.TextChoices):
        FORM = "form", "Signup form"
        IMPORT = "import", "Import"
        API = "api", "API"
        PANEL = "panel", "Panel"

    # No index of its own: the unique (list, subscriber) constraint's index starts with it,
    # and every imported or signed-up row would pay for a second one.
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    unsubscribe_reason = models.TextField(blank=True)
    # When a confirmation mail was last queued (signup forms): the re-send cool-down.
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailing_list", "subscriber"], name="subscription_unique_per_list"
            )
        ]
        indexes = [
            # The list page (filter by status, keyset on subscriber) and the send planner.
            models.Index(
                fields=["mailing_list", "status", "subscriber"], name="subscription_list_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} on {self.mailing_list_id}: {self.status}"


class SubscriptionChange(models.Model):
    """The history of a subscription: one row per status change after its creation."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    old_status = models.CharField(max_length=16, blank=True)
    new_status = models.CharField(max_length=16)
    source = models.CharField(max_length=16)
    note = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.old_status or 'new'} -> {self.new_status}"


# --- Custom fields and segments -----------------------------------------------------------


class AccountQuerySet(models.QuerySet):
    """For objects that belong to one account and are not delegated with a list."""

    def visible_to(self, user: object) -> AccountQuerySet:
        """The user's own account's objects (a delegate sees those of the lists' owner
        through the list: ``filter(account_id=mailing_list.owner_id)``)."""
        return self.filter(account=user)


class CustomField(models.Model):
    class Type(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        DATE = "date", "Date"
        BOOLEAN = "boolean", "Yes / no"
        CHOICE = "choice", "Choice"

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="custom_fields"
    )
    key = models.SlugField(
        max_length=50, help_text="Used in merge tags: {{ subscriber.fields.<key> }}"
    )
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TEXT)
    choices = models.JSONField(default=list, blank=True)
    in_forms = models.BooleanField("forms may ask for it", default=False)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="customfield_unique_key")
        ]

    def __str__(self) -> str:
        return self.label


class Segment(models.Model):
    """A saved filter over an account's subscribers (see lists.segments)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="segments"
    )
    name = models.CharField(max_length=200)
    # {"match": "all" | "any", "conditions": [{...}, ...]}: data, compiled to a queryset.
    definition = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


# --- Blocklist ----------------------------------------------------------------------------


class BlocklistEntryQuerySet(models.QuerySet["BlocklistEntry"]):
    def visible_to(self, user: object) -> BlocklistEntryQuerySet:
        """The user's account's entries and the global ones (which apply to it too)."""
        return self.filter(Q(account=user) | Q(account__isnull=True))

    def editable_by(self, user: object) -> BlocklistEntryQuerySet:
        """The user's account's entries; global ones are changed by operators (the admin)."""
        return self.filter(account=user)


class BlocklistEntry(models.Model):
    """A blocked address or whole domain: global (account empty) or for one account."""

    class Kind(models.TextChoices):
        ADDRESS = "address", "Address"
        DOMAIN = "domain", "Domain"

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="blocklist_entries",
        help_text="Empty: blocked for every account.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Normalised: a lowercased address, or a lowercased IDNA domain.
    value = models.CharField(max_length=254)
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BlocklistEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "blocklist entries"
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind", "value"], name="blocklist_unique_per_account"
            ),
            models.UniqueConstraint(
                fields=["kind", "value"],
                condition=Q(account__isnull=True),
                name="blocklist_unique_global",
            ),
        ]
        indexes = [models.Index(fields=["value", "kind"], name="blocklist_value")]

    def __str__(self) -> str:
        return self.value


# --- Import and export jobs ---------------------------------------------------------------


class ListJobQuerySet(models.QuerySet):
    """For jobs on one list (imports, bulk actions)."""

    def visible_to(self, user: object) -> ListJobQuerySet:
        """Jobs on lists the user may see (owned or delegated with any role)."""
        return self.filter(mailing_list_id__in=MailingList.objects.visible_to(user).values("id"))


class ImportJob(models.Model):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Waiting for column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Mode(models.TextChoices):
        CONFIRMED = "confirmed", "Subscribe as confirmed (I have their consent)"
        PENDING = "pending", "Subscribe as pending and send confirmation mails"

    class Existing(models.TextChoices):
        UPDATE = "update", "Update: fill in the columns of this file, keep other values"
        OVERWRITE = "overwrite", "Overwrite: replace name and fields with this file's values"
        SKIP = "skip", "Leave existing subscribers alone"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs"
    )
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="import_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    encoding = models.CharField(max_length=32, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    # Column index (as a string) -> "email" | "name" | "field:<key>" | "" (ignored).
    mapping = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CONFIRMED)
    existing = models.CharField(max_length=16, choices=Existing.choices, default=Existing.UPDATE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    rows_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # Byte offset and line reached by the last committed chunk: where a resumed run starts.
    resume_offset = models.BigIntegerField(default=0)
    resume_line = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The run that owns the job: set when a run claims it, cleared when it is queued again.
    # A run writes (chunks, heartbeats, the end) only while this is still its own token.
    lease = models.UUIDField(null=True, blank=True, editable=False)
    # When its task message was last sent (lists.job_recovery sends it again if lost), and
    # how often mailpanel resumed it on its own after its worker died.
    queued_at = models.DateTimeField(null=True, blank=True)
    auto_resumes = models.PositiveSmallIntegerField(default=0)

    objects = ListJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.original_name} into {self.mailing_list_id}"

    # A running job beats every few seconds (lists.imports.HEARTBEAT_SECONDS), between and
    # during chunks; one silent for this long has lost its worker.
    STALE_AFTER = timedelta(minutes=1)
    # How often lists.job_recovery resumes a job after its worker died, before it leaves
    # the job interrupted for the owner: a file that kills its worker every time is not
    # retried forever.
    MAX_AUTO_RESUMES = 3

    @property
    def resumes_by_itself(self) -> bool:
        return self.auto_resumes < self.MAX_AUTO_RESUMES

    @property
    def is_interrupted(self) -> bool:
        """Running, but silent for a while: the worker died."""
        if self.status != self.Status.RUNNING:
            return False
        beat = self.heartbeat_at or self.started_at or self.created_at
        return beat < timezone.now() - self.STALE_AFTER

    @property
    def percent_done(self) -> int:
        """Bytes of the file processed, in percent."""
        if self.status == self.Status.DONE:
            return 100
        try:
            size = self.file.size
        except (OSError, ValueError):
            return 0
        return min(100, self.resume_offset * 100 // size) if size else 0


class ImportReject(models.Model):
    """One rejected row of an import, with its line number and the reason."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rejects")
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    raw = models.TextField(blank=True)

    class Meta:
        ordering = ["line"]
        constraints = [
            models.UniqueConstraint(fields=["job", "line"], name="importreject_unique_line")
        ]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class BulkJob(models.Model):
    """A bulk action over a selection or a whole filter result, run by a worker."""

    class Action(models.TextChoices):
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe from this list"
        DELETE = "delete", "Delete subscribers"
        ADD_TO_LIST = "add_to_list", "Add to another list"
        REMOVE_FROM_LIST = "remove_from_list", "Remove from another list"
        BLOCKLIST = "blocklist", "Blocklist addresses"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulk_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="bulk_jobs"
    )
    target_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=24, choices=Action.choices)
    # Either explicit subscriber ids or the filter (query parameters) of the list page.
    subscriber_ids = models.JSONField(default=list, blank=True)
    filter = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when lists.job_recovery sends a lost task message again; until then, created_at.
    queued_at = models.DateTimeField(null=True, blank=True)

    objects = ListJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.mailing_list_id}"


class ExportJobQuerySet(models.QuerySet["ExportJob"]):
    def visible_to(self, user: object) -> ExportJobQuerySet:
        """Exports of lists the user may see, and of the user's own segments."""
        lists = MailingList.objects.visible_to(user).values("id")
        return self.filter(Q(mailing_list_id__in=lists) | Q(segment__account=user))


class ExportJob(models.Model):
    """A CSV export of a list (maybe filtered) or a segment, written to a file by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # Exactly one of the two: a list (narrowed by ``filter``) or a segment.
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, null=True, blank=True, related_name="export_jobs"
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, null=True, blank=True, related_name="export_jobs"
    )
    # The list page's filter parameters (lists.filters.ListFilter.params()).
    filter = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_written = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    filename = models.CharField("download name", max_length=100)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set when lists.job_recovery sends a lost task message again; until then, created_at.
    queued_at = models.DateTimeField(null=True, blank=True)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(mailing_list__isnull=True) ^ Q(segment__isnull=True),
                name="exportjob_list_or_segment",
            )
        ]

    def __str__(self) -> str:
        return f"export {self.filename}"

    # A running export reports progress every few seconds; silence this long means its
    # worker died (a new export is the remedy: the file is written from the start).
    STALE_AFTER = timedelta(minutes=2)

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING) and not self.is_interrupted

    @property
    def is_interrupted(self) -> bool:
        if self.status != self.Status.RUNNING:
            return False
        beat = self.heartbeat_at or self.started_at or self.created_at
        return beat < timezone.now() - self.STALE_AFTER


# --- Signup forms and suppression ---------------------------------------------------------


class SignupFormQuerySet(models.QuerySet["SignupForm"]):
    def visible_to(self, user: object) -> SignupFormQuerySet:
        """The user's account's forms. Forms are the account's, not a list's: a delegate
        of a list does not see the forms that subscribe to it."""
        return self.filter(account=user)

    def editable_by(self, user: object) -> SignupFormQuerySet:
        """The forms the user may change, preview and delete: the account's own."""
        return self.filter(account=user)


class SignupForm(models.Model):
    """A public signup form of an account; addressed publicly by ``uuid``."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup_forms"
    )
    name = models.CharField(max_length=200, help_text="Only you see this name.")
    lists = models.ManyToManyField(MailingList, related_name="signup_forms")
    allow_list_choice = models.BooleanField("subscribers choose among the lists", default=False)
    # [{"key": "name" | "field:<key>", "label": str, "required": bool}, ...] in order.
    field_config = models.JSONField(default=list, blank=True)
    title = models.CharField(max_length=200, default="Subscribe to our newsletter")
    button_text = models.CharField(max_length=100, default="Subscribe")
    success_text = models.TextField(default="Thank you for subscribing!")
    check_inbox_text = models.TextField(
        "check-your-inbox text",
        default="Almost done: please check your inbox and confirm your subscription.",
    )
    consent_text = models.TextField(
        "consent checkbox wording", blank=True, help_text="Empty: no consent checkbox."
    )
    # Only these stored values are ever redirected to, never a URL from the request.
    redirect_url = models.URLField("redirect after signup", blank=True, max_length=500)
    confirmed_redirect_url = models.URLField(
        "redirect after confirmation", blank=True, max_length=500
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SignupFormQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class SuppressedAddress(models.Model):
    """What remains of an erased subscriber: a SHA-256 of the address, so that imports
    and the API can refuse to add it again without the address being kept."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suppressed_addresses"
    )
    address_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "suppressed addresses"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "address_hash"], name="suppressedaddress_unique"
            )
        ]

    def __str__(self) -> str:
        return self.address_hash
