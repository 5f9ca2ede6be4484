from __future__ import annotations

from django.urls import path

from sending import views

app_name = "sending"

urlpatterns = [
    path(
        "campaigns/<uuid:campaign_id>/progress/",
        views.campaign_progress,
        name="campaign-progress",
    ),
]
