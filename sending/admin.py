from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from lists import addresses
from sending import domains, nodes, relays
from sending.models import Node, RecipientDomainLimit, Relay, SendingDomain


class RelayForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current password.",
    )

    class Meta:
        model = Relay
        fields = (
            "name", "host", "port", "security", "username", "max_connections",
            "rate_per_second", "weight", "spf_include", "enabled", "accounts",
        )  # fmt: skip

    def save(self, commit: bool = True) -> Relay:
        relay = super().save(commit=False)
        if self.cleaned_data.get("password"):
            relay.set_password(self.cleaned_data["password"])
        if commit:
            relay.save()
            self.save_m2m()
        return relay


class RelayTestForm(forms.Form):
    recipient = forms.EmailField(help_text="Where the test message goes.")


@admin.register(Relay)
class RelayAdmin(admin.ModelAdmin):
    form = RelayForm
    list_display = (
        "name",
        "host",
        "port",
        "security",
        "weight",
        "rate_per_second",
        "max_connections",
        "enabled",
        "health",
    )
    list_filter = ("enabled", "security")
    search_fields = ("name", "host")
    filter_horizontal = ("accounts",)
    readonly_fields = ("consecutive_failures", "cooldown_until", "last_error")
    change_form_template = "sending/relay_admin_change_form.html"

    @admin.display(description="health")
    def health(self, relay: Relay) -> str:
        if relay.cooldown_until and relay.cooldown_until > timezone.now():
            return f"cooling down until {relay.cooldown_until:%H:%M:%S}"
        return "ok" if not relay.consecutive_failures else f"{relay.consecutive_failures} failures"

    def get_urls(self) -> list[URLPattern]:
        send_test = path(
            "<path:object_id>/send-test/",
            self.admin_site.admin_view(self.send_test_view),
            name="sending_relay_send_test",
        )
        return [send_test, *super().get_urls()]

    def send_test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Asks for a recipient (GET), sends one test message through this relay alone
        (POST) and shows the relay's reply on its change page."""
        relay = self.get_object(request, unquote(object_id))
        if relay is None:
            raise Http404("No such relay.")
        if not self.has_change_permission(request, relay):
            raise PermissionDenied
        form = RelayTestForm(request.POST or None, initial={"recipient": request.user.email})
        if request.method == "POST" and form.is_valid():
            result = relays.send_test(relay, form.cleaned_data["recipient"])
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"Test through {relay.name}: {result.detail}", level)
            return redirect("admin:sending_relay_change", relay.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": relay,
            "title": f"Send a test message through {relay.name}",
            "form": form,
            "sender": relays.sender_for_test(relay)[0],
        }
        return TemplateResponse(request, "sending/relay_admin_send_test.html", context)


class SendingDomainForm(forms.ModelForm):
    ed25519 = forms.BooleanField(
        required=False, label="Also sign with Ed25519 (a second signature, RFC 8463)"
    )

    class Meta:
        model = SendingDomain
        fields = ("domain", "account", "selector")

    def clean_domain(self) -> str:
        try:
            return addresses.normalise_domain(self.cleaned_data["domain"])
        except addresses.InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(SendingDomain)
class SendingDomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "account", "selector", "verified_at", "last_checked_at")
    search_fields = ("domain", "account__username")
    raw_id_fields = ("account",)
    actions = ["check_dns_action"]

    def get_form(self, request: HttpRequest, obj: SendingDomain | None = None, **kwargs):  # noqa: ANN003, ANN201
        if obj is None:
            kwargs["form"] = SendingDomainForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: SendingDomain | None = None) -> list[str]:
        if obj is None:
            return ["domain", "account", "selector", "ed25519"]
        return ["domain", "account", "selector", "dns_records", "dns_check", "verified_at"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: SendingDomain | None = None
    ) -> list[str]:
        if obj is None:
            return []
        return ["domain", "selector", "dns_records", "dns_check", "verified_at"]

    def save_model(
        self, request: HttpRequest, obj: SendingDomain, form: forms.Form, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = domains.create(
            form.cleaned_data["domain"],
            account=form.cleaned_data.get("account"),
            selector=form.cleaned_data["selector"],
            ed25519=form.cleaned_data.get("ed25519", False),
        )
        obj.pk, obj.uuid = created.pk, created.uuid

    @admin.display(description="DNS records to publish")
    def dns_records(self, obj: SendingDomain) -> str:
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            ((r.name, r.type, r.value) for r in domains.records(obj)),
        )
        return format_html("<table>{}</table>", rows)

    @admin.display(description="Last DNS check")
    def dns_check(self, obj: SendingDomain) -> str:
        items = obj.last_check.get("items", [])
        if not items:
            return "not checked yet: use the action “Check DNS”"
        marks = {True: "✔", False: "✘", None: "⚠"}
        return format_html_join(
            "", "<div>{} {}: {}</div>", ((marks[i["ok"]], i["name"], i["detail"]) for i in items)
        )

    @admin.action(description="Check DNS (DKIM, SPF, DMARC)")
    def check_dns_action(self, request: HttpRequest, queryset: QuerySet[SendingDomain]) -> None:
        for domain in queryset:
            items = domains.check_dns(domain)
            summary = ", ".join(f"{i.name}: {i.detail}" for i in items)
            level = messages.SUCCESS if domain.verified else messages.WARNING
            self.message_user(request, f"{domain.domain}: {summary}", level)


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "hostname",
        "pid",
        "state",
        "enabled",
        "consuming_send",
        "queues",
        "concurrency",
        "activity",
        "messages_sent",
        "messages_per_second",
        "heartbeat_at",
        "version",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "hostname")
    readonly_fields = [f.name for f in Node._meta.fields if f.name != "enabled"]
    actions = ["disable_nodes", "enable_nodes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # nodes register themselves

    @admin.display(description="state")
    def state(self, node: Node) -> str:
        return node.state

    @admin.action(description="Disable: finish current work, take no more send work")
    def disable_nodes(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            nodes.set_enabled(node, False)
        self.message_user(request, f"{queryset.count()} node(s) will stop taking send work.")

    @admin.action(description="Enable: take send work again")
    def enable_nodes(self, request: HttpRequest, queryset: QuerySet[Node]) -> None:
        for node in queryset:
            nodes.set_enabled(node, True)
        self.message_user(request, f"{queryset.count()} node(s) will take send work again.")


class RecipientDomainLimitForm(forms.ModelForm):
    class Meta:
        model = RecipientDomainLimit
        fields = ("domain", "per_minute", "enabled")

    def clean_domain(self) -> str:
        try:
            return addresses.normalise_domain(self.cleaned_data["domain"])
        except addresses.InvalidAddress as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(RecipientDomainLimit)
class RecipientDomainLimitAdmin(admin.ModelAdmin):
    form = RecipientDomainLimitForm
    list_display = ("domain", "per_minute", "enabled")
    list_editable = ("per_minute", "enabled")
    list_filter = ("enabled",)
    search_fields = ("domain",)
