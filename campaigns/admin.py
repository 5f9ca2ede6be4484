from __future__ import annotations

from django.contrib import admin

from campaigns.models import Attachment, Campaign, EmailTemplate, Link, MediaFile


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fields = ["name", "size", "content_type", "file"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "status", "send_at", "started_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["name", "subject", "account__username"]
    raw_id_fields = ["account", "template", "segment"]
    filter_horizontal = ["lists"]
    readonly_fields = ["uuid", "frozen_at", "scheduled_at", "started_at", "finished_at"]
    inlines = [AttachmentInline]


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "updated_at"]
    search_fields = ["name", "account__username"]
    raw_id_fields = ["account"]


@admin.register(Link)
class LinkAdmin(admin.ModelAdmin):
    list_display = ["campaign", "index", "url"]
    raw_id_fields = ["campaign"]


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "size", "created_at"]
    raw_id_fields = ["account"]
