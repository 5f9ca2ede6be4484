from __future__ import annotations

from django.urls import path

from stats import views

app_name = "stats"

urlpatterns = [
    path("", views.index, name="index"),
    path("export/<slug:table>/", views.index_export, name="index-export"),
    path("campaigns/<uuid:campaign_id>/", views.campaign, name="campaign"),
    path("campaigns/<uuid:campaign_id>/links/", views.campaign_links, name="campaign-links"),
    path(
        "campaigns/<uuid:campaign_id>/links/document/",
        views.campaign_links_document,
        name="campaign-links-document",
    ),
    path("campaigns/<uuid:campaign_id>/bounces/", views.campaign_bounces, name="campaign-bounces"),
    path(
        "campaigns/<uuid:campaign_id>/export/<slug:table>/",
        views.campaign_export,
        name="campaign-export",
    ),
    path("lists/<uuid:list_uuid>/", views.list_stats, name="list"),
    path("lists/<uuid:list_uuid>/export/", views.list_export, name="list-export"),
    path(
        "lists/<uuid:list_uuid>/export/engagement/",
        views.list_engagement_export,
        name="list-engagement-export",
    ),
    path("subscribers/<uuid:subscriber_id>/", views.subscriber_timeline, name="subscriber"),
    path(
        "subscribers/<uuid:subscriber_id>/export/",
        views.subscriber_export,
        name="subscriber-export",
    ),
    path("reports/", views.report_index, name="report-index"),
    path("reports/<uuid:report_id>/", views.report_detail, name="report-detail"),
    path("reports/<uuid:report_id>/progress/", views.report_progress, name="report-progress"),
    path("reports/<uuid:report_id>/rerun/", views.report_rerun, name="report-rerun"),
    path(
        "reports/<uuid:report_id>/export/<slug:dimension>/",
        views.report_export,
        name="report-export",
    ),
]
