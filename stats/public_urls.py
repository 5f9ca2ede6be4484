"""Public tracking URLs (no login), in the shapes campaigns.merge writes into messages:
``/t/o/<token>`` for the open pixel and ``/t/c/<token>/<link index>`` for a click."""

from __future__ import annotations

from django.urls import path

from stats import public_views

app_name = "tracking"

urlpatterns = [
    path("o/<str:token>", public_views.opened, name="open"),
    path("c/<str:token>/<int:index>", public_views.clicked, name="click"),
]
