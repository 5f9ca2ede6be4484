"""Public campaign pages (no login): web versions, archives, media-library images."""

from __future__ import annotations

from django.urls import path

from campaigns.views import public

app_name = "campaign_public"

urlpatterns = [
    path("<uuid:campaign_id>/", public.web_version, name="web-version"),
    path("archive/<str:token>/", public.archive, name="archive"),
    path("media/<uuid:media_id>/<str:name>", public.media_file, name="media"),
]
