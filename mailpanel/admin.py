from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from mailpanel.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_staff")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Sending defaults", {"fields": ("time_zone", "default_from_name", "default_from_email")}),
    )
    actions = ["deactivate_users", "activate_users"]

    @admin.action(description="Deactivate selected users (they can no longer sign in)")
    def deactivate_users(self, request, queryset) -> None:  # noqa: ANN001
        changed = queryset.exclude(pk=request.user.pk).update(is_active=False)
        self.message_user(request, f"{changed} user(s) deactivated.")

    @admin.action(description="Activate selected users")
    def activate_users(self, request, queryset) -> None:  # noqa: ANN001
        changed = queryset.update(is_active=True)
        self.message_user(request, f"{changed} user(s) activated.")
