from __future__ import annotations

from django.urls import path

from campaigns.views import campaigns, designs, media

app_name = "campaigns"

urlpatterns = [
    path("", campaigns.campaign_index, name="index"),
    path("new/", campaigns.campaign_create, name="create"),
    path("recipient-count/", campaigns.recipient_count, name="recipient-count"),
    path("<uuid:campaign_id>/", campaigns.campaign_detail, name="detail"),
    path("<uuid:campaign_id>/edit/", campaigns.campaign_edit, name="edit"),
    path("<uuid:campaign_id>/preview/", campaigns.campaign_preview, name="preview"),
    path(
        "<uuid:campaign_id>/preview/document/",
        campaigns.campaign_preview_document,
        name="preview-document",
    ),
    path("<uuid:campaign_id>/test/", campaigns.campaign_test, name="test-send"),
    path("<uuid:campaign_id>/attachments/", campaigns.attachment_add, name="attachment-add"),
    path(
        "<uuid:campaign_id>/attachments/<uuid:attachment_id>/delete/",
        campaigns.attachment_delete,
        name="attachment-delete",
    ),
    path("<uuid:campaign_id>/schedule/", campaigns.campaign_schedule, name="schedule"),
    path("<uuid:campaign_id>/unschedule/", campaigns.campaign_unschedule, name="unschedule"),
    path("<uuid:campaign_id>/pause/", campaigns.campaign_pause, name="pause"),
    path("<uuid:campaign_id>/resume/", campaigns.campaign_resume, name="resume"),
    path("<uuid:campaign_id>/cancel/", campaigns.campaign_cancel, name="cancel"),
    path("<uuid:campaign_id>/duplicate/", campaigns.campaign_duplicate, name="duplicate"),
    path("<uuid:campaign_id>/delete/", campaigns.campaign_delete, name="delete"),
    path("templates/", designs.template_index, name="template-index"),
    path("templates/new/", designs.template_create, name="template-create"),
    path("templates/<uuid:template_id>/", designs.template_edit, name="template-edit"),
    path(
        "templates/<uuid:template_id>/preview/",
        designs.template_preview,
        name="template-preview",
    ),
    path("templates/<uuid:template_id>/delete/", designs.template_delete, name="template-delete"),
    path("media/", media.media_index, name="media-index"),
    path("media/upload/", media.media_upload, name="media-upload"),
]
