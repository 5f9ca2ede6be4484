from __future__ import annotations

from django.urls import path

from sending import domain_views, views

app_name = "sending"

urlpatterns = [
    path(
        "campaigns/<uuid:campaign_id>/progress/",
        views.campaign_progress,
        name="campaign-progress",
    ),
    path("domains/", domain_views.domain_index, name="domain-index"),
    path("domains/add/", domain_views.domain_create, name="domain-create"),
    path("domains/<uuid:domain_id>/", domain_views.domain_detail, name="domain-detail"),
    path("domains/<uuid:domain_id>/check/", domain_views.domain_check, name="domain-check"),
    path("domains/<uuid:domain_id>/delete/", domain_views.domain_delete, name="domain-delete"),
]
