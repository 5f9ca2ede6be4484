from __future__ import annotations

from django.urls import path

from bounces import views

app_name = "bounces"

urlpatterns = [
    path("campaigns/<uuid:campaign_id>/", views.campaign_bounces, name="campaign"),
    path(
        "campaigns/<uuid:campaign_id>/export/<slug:table>/",
        views.campaign_bounces_export,
        name="campaign-export",
    ),
    path("lists/<uuid:list_uuid>/", views.list_bounces, name="list"),
    path(
        "lists/<uuid:list_uuid>/export/<slug:table>/",
        views.list_bounces_export,
        name="list-export",
    ),
    path("subscribers/<uuid:uuid>/lift/", views.subscriber_lift, name="subscriber-lift"),
    path("rules/", views.rules, name="rules"),
]
