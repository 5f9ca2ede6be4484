from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from mailpanel.views import account, health, outbox

admin.site.site_header = "mailpanel operations"
admin.site.site_title = "mailpanel admin"

urlpatterns = [
    # First: the tracking endpoints take most requests, and resolving walks the list in order.
    path("t/", include("stats.public_urls")),
    path("", account.home, name="home"),
    path("account/", account.account, name="account"),
    path("accounts/signup/", account.signup, name="signup"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"
    ),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("outbox/", outbox.outbox_index, name="outbox"),
    path("outbox/clear/", outbox.outbox_clear, name="outbox-clear"),
    path("outbox/<str:key>/", outbox.outbox_message, name="outbox-message"),
    path("outbox/<str:key>/html/", outbox.outbox_message_html, name="outbox-message-html"),
    path("outbox/<str:key>/raw/", outbox.outbox_message_raw, name="outbox-message-raw"),
    path("lists/", include("lists.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("sending/", include("sending.urls")),
    path("bounces/", include("bounces.urls")),
    path("stats/", include("stats.urls")),
    path("s/", include("lists.public_urls")),
    path("c/", include("campaigns.public_urls")),
    path("healthz", health.healthz, name="healthz"),
    path("webhooks/", include("bounces.webhook_urls")),
    path("admin/", admin.site.urls),
]
