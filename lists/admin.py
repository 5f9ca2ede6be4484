"""Operators' view of every account's lists, subscribers and blocklist entries.

The subscriber and subscription tables reach millions of rows: no list_filter on
foreign keys (each would load every account), raw id widgets, joined columns
through list_select_related, no full result count, and searches that use an index.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property

from lists import addresses, blocklist, subscriptions
from lists.models import (
    BlocklistEntry,
    BulkJob,
    CustomField,
    ImportJob,
    ListRole,
    MailingList,
    Segment,
    Subscriber,
    Subscription,
)
from lists.subscriber_forms import BlocklistPasteForm

ESTIMATE_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """Uses Postgres' row estimate for an unfiltered changelist instead of COUNT(*)."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [self.object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            # The estimate is stale between ANALYZE runs (-1 before the first, 0 right
            # after a table was emptied): trust it only where an exact count would hurt.
            if row and row[0] >= ESTIMATE_ABOVE:
                return int(row[0])
        return super().count


class BigTableAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False


class ListRoleInline(admin.TabularInline):
    model = ListRole
    fk_name = "mailing_list"
    raw_id_fields = ("user", "granted_by")
    extra = 0


@admin.register(MailingList)
class MailingListAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "confirmed_count",
        "pending_count",
        "unsubscribed_count",
        "bounced_count",
        "complained_count",
        "created_at",
    )
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username", "owner__email")
    raw_id_fields = ("owner",)
    readonly_fields = (
        "uuid",
        "pending_count",
        "confirmed_count",
        "unsubscribed_count",
        "bounced_count",
        "complained_count",
        "created_at",
        "updated_at",
    )
    inlines = [ListRoleInline]
    actions = ["recount_subscribers"]

    @admin.action(description="Recount subscribers of the selected lists")
    def recount_subscribers(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("id", flat=True))
        subscriptions.recount(ids)
        self.message_user(request, f"Recounted {len(ids)} list(s).")


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "subscriber"
    raw_id_fields = ("mailing_list",)
    # Statuses change through lists.subscriptions (history and counts): read only here.
    readonly_fields = (
        "mailing_list",
        "status",
        "source",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
    )
    fields = readonly_fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class SubscriberAdminForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ("account", "email", "name")

    def clean_email(self) -> str:
        try:
            return addresses.normalise(self.cleaned_data["email"])
        except addresses.InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Subscriber)
class SubscriberAdmin(BigTableAdmin):
    form = SubscriberAdminForm
    list_display = ("email", "name", "account", "created_at")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    # Field values and consent are validated where they are collected (lists.fields,
    # signup forms); raw JSON edits here would bypass that.
    readonly_fields = ("uuid", "domain", "fields", "consent", "created_at", "updated_at")
    search_fields = ("email",)
    search_help_text = (
        "A whole address (any case), a domain such as example.org, or an account's user name."
    )
    inlines = [SubscriptionInline]
    actions = ["delete_with_counts"]

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # The stock bulk delete would leave the lists' counts wrong.
        actions.pop("delete_selected", None)
        return actions

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        return _search_subscribers(queryset, search_term, prefix=""), False

    def save_model(self, request: HttpRequest, obj: Subscriber, form: object, change: bool):  # noqa: ANN201
        obj.domain = addresses.domain_of(obj.email)
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Subscriber) -> None:
        subscriptions.delete_subscriber(obj)

    @admin.action(description="Delete selected subscribers (keeps list counts right)")
    def delete_with_counts(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for subscriber in queryset:
            subscriptions.delete_subscriber(subscriber)
            count += 1
        self.message_user(request, f"Deleted {count} subscriber(s).")


def _search_subscribers(queryset: QuerySet, term: str, *, prefix: str) -> QuerySet:
    """Indexed lookups only: a substring search over millions of addresses is a full scan."""
    term = term.strip()
    if not term:
        return queryset
    if "@" in term.lstrip("@"):
        matching = Subscriber.objects.with_email(term)
        if prefix:
            return queryset.filter(**{f"{prefix}in": matching.values("id")})
        return queryset.filter(id__in=matching.values("id"))
    try:
        domain = addresses.normalise_domain(term.lstrip("@"))
    except addresses.InvalidAddress:
        return queryset.filter(**{f"{prefix}account__username": term})
    return queryset.filter(**{f"{prefix}domain": domain}) | queryset.filter(
        **{f"{prefix}account__username": term}
    )


@admin.register(Subscription)
class SubscriptionAdmin(BigTableAdmin):
    list_display = ("subscriber", "mailing_list", "status", "source", "created_at")
    list_select_related = ("subscriber", "mailing_list")
    list_filter = ("status", "source")
    raw_id_fields = ("mailing_list", "subscriber")
    search_fields = ("subscriber__email",)
    search_help_text = "A whole subscriber address, a domain, or an account's user name."
    # Status changes go through lists.subscriptions (history, counts): nothing editable.
    readonly_fields = (
        "mailing_list",
        "subscriber",
        "status",
        "source",
        "created_at",
        "status_changed_at",
        "confirmed_at",
        "unsubscribed_at",
        "unsubscribe_reason",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        return _search_subscribers(queryset, search_term, prefix="subscriber__"), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ListRole)
class ListRoleAdmin(admin.ModelAdmin):
    list_display = ("mailing_list", "user", "role", "granted_by", "created_at")
    list_select_related = ("mailing_list", "user", "granted_by")
    list_filter = ("role",)
    raw_id_fields = ("mailing_list", "user", "granted_by")
    search_fields = ("mailing_list__name", "user__username", "user__email")


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    list_display = ("label", "key", "type", "account", "in_forms", "position")
    list_select_related = ("account",)
    list_filter = ("type", "in_forms")
    raw_id_fields = ("account",)
    search_fields = ("key", "label", "account__username")


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "updated_at")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("name", "account__username")
    readonly_fields = ("uuid", "created_at", "updated_at")


class BlocklistEntryForm(forms.ModelForm):
    """Accepts an address or a domain in ``value``; the kind is worked out from it."""

    class Meta:
        model = BlocklistEntry
        fields = ("account", "kind", "value", "reason")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].required = False
        self.fields["kind"].help_text = "Worked out from the value."
        self.fields[
            "value"
        ].help_text = "An address (ann@example.org) or a domain (example.org or @example.org)."

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("value"):
            try:
                cleaned["kind"], cleaned["value"] = blocklist.parse_entry(cleaned["value"])
            except addresses.InvalidAddress as exc:
                self.add_error("value", str(exc))
        return cleaned


class BlocklistAccountFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("global", "Global"), ("account", "One account")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "global":
            return queryset.filter(account__isnull=True)
        if self.value() == "account":
            return queryset.filter(account__isnull=False)
        return queryset


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(BigTableAdmin):
    form = BlocklistEntryForm
    change_list_template = "lists/blocklist_admin_change_list.html"
    list_display = ("value", "kind", "scope", "reason", "created_by", "created_at")
    list_select_related = ("account", "created_by")
    list_filter = (BlocklistAccountFilter, "kind")
    raw_id_fields = ("account",)
    search_fields = ("value", "account__username")

    @admin.display(description="scope")
    def scope(self, obj: BlocklistEntry) -> str:
        return "global" if obj.account_id is None else f"account {obj.account}"

    def save_model(self, request: HttpRequest, obj: BlocklistEntry, form: object, change: bool):  # noqa: ANN201
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list[URLPattern]:
        paste = path(
            "paste/",
            self.admin_site.admin_view(self.paste_view),
            name="lists_blocklistentry_paste",
        )
        return [paste, *super().get_urls()]

    def paste_view(self, request: HttpRequest) -> HttpResponse:
        """Adds many global entries at once and reports each line."""
        if not self.has_add_permission(request):
            return redirect("admin:lists_blocklistentry_changelist")
        form = BlocklistPasteForm(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = blocklist.add_entries(
                form.cleaned_data["entries"],
                account=None,
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
            self.message_user(
                request,
                f"Added {len(result.added)}, already there {len(result.existing)}, "
                f"invalid {len(result.invalid)}.",
                messages.SUCCESS if not result.invalid else messages.WARNING,
            )
            form = BlocklistPasteForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Paste global blocklist entries",
            "form": form,
            "result": result,
            "changelist_url": reverse("admin:lists_blocklistentry_changelist"),
        }
        return TemplateResponse(request, "lists/blocklist_admin_paste.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = (
        "original_name",
        "mailing_list",
        "account",
        "status",
        "rows_read",
        "imported",
        "updated",
        "skipped",
        "rejected",
        "created_at",
    )
    list_select_related = ("mailing_list", "account")
    list_filter = ("status",)
    search_fields = ("original_name", "account__username", "mailing_list__name")


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdmin):
    list_display = ("action", "mailing_list", "account", "status", "done", "total", "created_at")
    list_select_related = ("mailing_list", "account")
    list_filter = ("status", "action")
    search_fields = ("account__username", "mailing_list__name")
