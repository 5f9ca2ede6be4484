"""Public pages for subscribers (no login): signup, confirm, unsubscribe, preferences."""

from __future__ import annotations

from django.urls import path

from lists.views import previews, public

app_name = "public"

urlpatterns = [
    path("f/<uuid:form_id>/", public.form_page, name="form"),
    path("f/<uuid:form_id>/embed.json", public.form_config, name="form-config"),
    path("f/<uuid:form_id>/submit", public.form_submit, name="form-submit"),
    # The form builder's previews (owner only, through a signed token; they save nothing).
    path("p/<str:token>/", previews.preview_page, name="preview-page"),
    path("p/<str:token>/embed.json", previews.preview_config, name="preview-config"),
    path("p/<str:token>/submit", previews.preview_submit, name="preview-submit"),
    path("p/<str:token>/embed/<str:kind>/", previews.form_preview, name="form-preview"),
    path("confirm/<str:token>/", public.confirm, name="confirm"),
    path("unsubscribe/<str:token>/", public.unsubscribe, name="unsubscribe"),
    path("unsubscribe/<str:token>/one-click", public.one_click, name="one-click"),
    path("preferences/<str:token>/", public.preferences_page, name="preferences"),
    path("preferences/<str:token>/data.json", public.preferences_export, name="preferences-export"),
    path("preferences/<str:token>/delete/", public.preferences_delete, name="preferences-delete"),
]
