from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bounces import mailboxes, quarantine, suppression
from bounces.models import (
    BounceEvent,
    BounceMailbox,
    QuarantinedMessage,
    ReturnedMessage,
    SenderSideAlert,
    SenderSideCounter,
    SuppressionPolicy,
)


@admin.register(BounceEvent)
class BounceEventAdmin(admin.ModelAdmin):
    list_display = (
        "received_at",
        "recipient",
        "bounce_class",
        "status_code",
        "reply_code",
        "source",
        "provider",
        "account",
        "applied",
    )
    list_filter = ("bounce_class", "source", "provider", "applied")
    search_fields = ("recipient", "diagnostic", "provider_event_id", "receiving_domain")
    date_hierarchy = "received_at"
    list_select_related = ("account",)
    raw_id_fields = ("delivery", "campaign", "account", "subscriber", "relay")
    actions = ["apply_rules"]

    def get_readonly_fields(self, request: HttpRequest, obj: BounceEvent | None = None) -> list:
        # Events are evidence: what arrived is never edited.
        return [f.name for f in BounceEvent._meta.fields if f.name != "raw"] + ["raw_input"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="raw input")
    def raw_input(self, event: BounceEvent) -> str:
        # The returned message (stored once for all its events) or the provider's payload.
        return event.raw_text()[:200_000]


@admin.register(ReturnedMessage)
class ReturnedMessageAdmin(admin.ModelAdmin):
    list_display = ("received_at", "source", "envelope_recipient", "recipients_found", "note")
    list_filter = ("source",)
    search_fields = ("envelope_recipient",)
    date_hierarchy = "received_at"
    fields = (
        "received_at",
        "source",
        "envelope_recipient",
        "recipients_found",
        "recipients_recorded",
        "note",
        "raw_message",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="raw message")
    def raw_message(self, message: ReturnedMessage) -> str:
        return message.raw_text()[:200_000]

    @admin.action(description="Apply the bounce rules to events they have not run on")
    def apply_rules(self, request: HttpRequest, queryset: QuerySet[BounceEvent]) -> None:
        changed = sum(suppression.apply(event) for event in queryset.filter(applied=False))
        self.message_user(request, f"Rules applied; {changed} subscriptions changed.")


@admin.register(QuarantinedMessage)
class QuarantinedMessageAdmin(admin.ModelAdmin):
    list_display = ("received_at", "source", "provider", "envelope_recipient", "reason", "status")
    list_filter = ("status", "source", "provider")
    search_fields = ("reason", "envelope_recipient")
    date_hierarchy = "received_at"
    fields = (
        "received_at",
        "source",
        "provider",
        "envelope_recipient",
        "reason",
        "status",
        "handled_by",
        "handled_at",
        "raw_message",
    )
    readonly_fields = fields
    actions = ["reprocess", "discard"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="raw input")
    def raw_message(self, message: QuarantinedMessage) -> str:
        return message.raw_text()[:200_000]

    @admin.action(description="Reprocess the selected messages")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[QuarantinedMessage]) -> None:
        done = still = 0
        for message in queryset.filter(status=QuarantinedMessage.Status.WAITING):
            if quarantine.reprocess(message, actor=request.user):
                done += 1
            else:
                still += 1
        self.message_user(request, f"{done} reprocessed.", messages.SUCCESS)
        if still:
            self.message_user(
                request, f"{still} still not understood; see their reason.", messages.WARNING
            )

    @admin.action(description="Discard the selected messages")
    def discard(self, request: HttpRequest, queryset: QuerySet[QuarantinedMessage]) -> None:
        count = sum(quarantine.discard(m, actor=request.user) for m in queryset)
        self.message_user(request, f"{count} discarded.", messages.SUCCESS)


class BounceMailboxForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current password.",
    )

    class Meta:
        model = BounceMailbox
        fields = (
            "name", "protocol", "host", "port", "security", "username", "folder",
            "after_processing", "move_to_folder", "enabled",
        )  # fmt: skip

    def clean(self) -> dict:
        data = super().clean()
        moving = data.get("after_processing") == BounceMailbox.AfterProcessing.MOVE
        if moving and data.get("protocol") == BounceMailbox.Protocol.POP3:
            self.add_error("after_processing", "POP3 has no folders: choose delete.")
        if moving and not data.get("move_to_folder"):
            self.add_error("move_to_folder", "Name the folder to move processed messages to.")
        return data

    def save(self, commit: bool = True) -> BounceMailbox:
        mailbox = super().save(commit=False)
        if self.cleaned_data.get("password"):
            mailbox.set_password(self.cleaned_data["password"])
        if commit:
            mailbox.save()
        return mailbox


@admin.register(BounceMailbox)
class BounceMailboxAdmin(admin.ModelAdmin):
    form = BounceMailboxForm
    list_display = ("name", "protocol", "host", "port", "enabled", "last_polled_at", "last_error")
    list_filter = ("enabled", "protocol")
    search_fields = ("name", "host", "username")
    readonly_fields = ("last_polled_at", "last_error")
    actions = ["poll_now"]

    @admin.action(description="Poll now")
    def poll_now(self, request: HttpRequest, queryset: QuerySet[BounceMailbox]) -> None:
        for mailbox in queryset:
            result = mailboxes.poll(mailbox.id)
            if result is None:
                text, level = "being polled already, or disabled.", messages.WARNING
            elif result.error:
                text, level = result.error, messages.ERROR
            else:
                text = f"{result.stored} stored, {result.removed} removed."
                level = messages.SUCCESS
            self.message_user(request, f"{mailbox.name}: {text}", level)


@admin.register(SuppressionPolicy)
class SuppressionPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "account",
        "suppress_hard",
        "suppress_complaint",
        "soft_bounce_days",
        "soft_bounce_window_days",
    )
    search_fields = ("account__username", "account__email")
    raw_id_fields = ("account",)


@admin.register(SenderSideCounter)
class SenderSideCounterAdmin(admin.ModelAdmin):
    list_display = ("day", "relay", "receiving_domain", "count")
    list_filter = ("relay",)
    search_fields = ("receiving_domain",)
    date_hierarchy = "day"

    def get_readonly_fields(self, request: HttpRequest, obj: SenderSideCounter | None = None):  # noqa: ANN201
        return [f.name for f in SenderSideCounter._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SenderSideAlert)
class SenderSideAlertAdmin(admin.ModelAdmin):
    list_display = ("raised_at", "counter", "count_at_raise", "acknowledged_by", "acknowledged_at")
    list_filter = ("acknowledged_at",)
    list_select_related = ("counter__relay", "acknowledged_by")
    readonly_fields = (
        "counter",
        "raised_at",
        "count_at_raise",
        "sample_diagnostic",
        "acknowledged_by",
        "acknowledged_at",
    )
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge the selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[SenderSideAlert]) -> None:
        count = queryset.filter(acknowledged_at__isnull=True).update(
            acknowledged_by=request.user, acknowledged_at=timezone.now()
        )
        self.message_user(request, f"{count} acknowledged.", messages.SUCCESS)
