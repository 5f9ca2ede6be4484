from __future__ import annotations

from django.urls import path

from lists.views import blocklist, fields, imports, lists, segments, signup_forms, subscribers  # noqa: F401

app_name = "lists"

urlpatterns = [
    # Lists, delegation, bulk actions (lists.views.lists)
    path("", lists.list_index, name="index"),
    path("new/", lists.list_create, name="create"),
    path("<uuid:list_uuid>/", lists.list_detail, name="detail"),
    path("<uuid:list_uuid>/edit/", lists.list_edit, name="edit"),
    path("<uuid:list_uuid>/delete/", lists.list_delete, name="delete"),
    path("<uuid:list_uuid>/delegation/", lists.list_delegation, name="delegation"),
    path("<uuid:list_uuid>/delegation/revoke/", lists.list_revoke, name="delegation-revoke"),
    path("<uuid:list_uuid>/bulk/", lists.bulk_action, name="bulk"),
    path("<uuid:list_uuid>/bulk/jobs/", lists.bulk_jobs, name="bulk-jobs"),
    # Subscribers (lists.views.subscribers)
    path("subscribers/<uuid:uuid>/", subscribers.subscriber_detail, name="subscriber-detail"),
    path("subscribers/<uuid:uuid>/edit/", subscribers.subscriber_edit, name="subscriber-edit"),
    path(
        "subscribers/<uuid:uuid>/delete/", subscribers.subscriber_delete, name="subscriber-delete"
    ),
    path(
        "subscribers/<uuid:uuid>/blocklist/",
        subscribers.subscriber_blocklist,
        name="subscriber-blocklist",
    ),
    path(
        "subscribers/<uuid:uuid>/lists/<uuid:list_uuid>/unsubscribe/",
        subscribers.subscriber_unsubscribe,
        name="subscriber-unsubscribe",
    ),
    path(
        "subscribers/<uuid:uuid>/lists/<uuid:list_uuid>/resubscribe/",
        subscribers.subscriber_resubscribe,
        name="subscriber-resubscribe",
    ),
    path("<uuid:list_uuid>/subscribers/add/", subscribers.subscriber_add, name="subscriber-add"),
    # Imports (lists.views.imports)
    path("<uuid:list_uuid>/import/", imports.import_upload, name="import-upload"),
    path("imports/<uuid:job_uuid>/", imports.import_detail, name="import-detail"),
    path("imports/<uuid:job_uuid>/mapping/", imports.import_mapping, name="import-mapping"),
    path("imports/<uuid:job_uuid>/progress/", imports.import_progress, name="import-progress"),
    path("imports/<uuid:job_uuid>/rejects.csv", imports.import_rejects, name="import-rejects"),
    path("imports/<uuid:job_uuid>/resume/", imports.import_resume, name="import-resume"),
    # Exports and segments (lists.views.segments)
    path("<uuid:list_uuid>/export/", segments.list_export, name="export-list"),
    path("<uuid:list_uuid>/export/job/", segments.list_export_start, name="export-start"),
    path("exports/<uuid:job_uuid>/progress/", segments.export_progress, name="export-progress"),
    path("exports/<uuid:job_uuid>/download/", segments.export_download, name="export-download"),
    path("segments/", segments.segment_index, name="segment-index"),
    path("segments/new/", segments.segment_create, name="segment-create"),
    path("segments/count/", segments.segment_count, name="segment-count"),
    path("segments/<uuid:segment_uuid>/", segments.segment_detail, name="segment-detail"),
    path("segments/<uuid:segment_uuid>/edit/", segments.segment_edit, name="segment-edit"),
    path("segments/<uuid:segment_uuid>/delete/", segments.segment_delete, name="segment-delete"),
    path("segments/<uuid:segment_uuid>/export/", segments.segment_export, name="segment-export"),
    path(
        "segments/<uuid:segment_uuid>/export/job/",
        segments.segment_export_start,
        name="segment-export-start",
    ),
    # Custom fields (lists.views.fields)
    path("fields/", fields.field_index, name="field-index"),
    path("fields/new/", fields.field_create, name="field-create"),
    path("fields/<slug:key>/edit/", fields.field_edit, name="field-edit"),
    path("fields/<slug:key>/delete/", fields.field_delete, name="field-delete"),
    # Blocklist (lists.views.blocklist)
    path("blocklist/", blocklist.blocklist_index, name="blocklist"),
    path("blocklist/remove/", blocklist.blocklist_remove, name="blocklist-remove"),
    path("blocklist/subscribers/", blocklist.blocklist_subscribers, name="blocklist-subscribers"),
    # Signup forms (lists.views.signup_forms)
    path("forms/", signup_forms.form_index, name="form-index"),
    path("forms/new/", signup_forms.form_create, name="form-create"),
    path("forms/<uuid:form_id>/", signup_forms.form_detail, name="form-detail"),
    path("forms/<uuid:form_id>/edit/", signup_forms.form_edit, name="form-edit"),
    path("forms/new/preview/", signup_forms.form_live_preview, name="form-live-preview-new"),
    path("forms/<uuid:form_id>/preview/", signup_forms.form_live_preview, name="form-live-preview"),
    path("forms/<uuid:form_id>/delete/", signup_forms.form_delete, name="form-delete"),
    path("<uuid:list_id>/public-texts/", signup_forms.list_public, name="list-public"),
]
