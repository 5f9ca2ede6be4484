"""ESP tracking webhooks, mounted at /webhooks/: public, authenticated by anymail."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bounces.webhooks import (
    MailgunTrackingView,
    PostmarkTrackingView,
    SendGridTrackingView,
    SESTrackingView,
)

app_name = "webhooks"


def _if_secured(view: Callable[..., HttpResponse], *needs: str) -> Callable[..., HttpResponse]:
    """The view, or 404 while its secret is unset: anymail would accept anyone's posts."""

    @csrf_exempt
    def secured(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not all(_configured(name) for name in needs):
            raise Http404("webhook not configured")
        return view(request, *args, **kwargs)

    return secured


def _configured(name: str) -> bool:
    return bool(settings.ANYMAIL.get(name) or getattr(settings, name, None))


urlpatterns = [
    path(
        "amazon_ses/tracking/",
        _if_secured(SESTrackingView.as_view(), "WEBHOOK_SECRET", "AMAZON_SES_SNS_TOPIC_ARNS"),
        name="amazon_ses",
    ),
    path(
        "mailgun/tracking/",
        _if_secured(MailgunTrackingView.as_view(), "MAILGUN_WEBHOOK_SIGNING_KEY"),
        name="mailgun",
    ),
    path(
        "postmark/tracking/",
        _if_secured(PostmarkTrackingView.as_view(), "WEBHOOK_SECRET"),
        name="postmark",
    ),
    path(
        "sendgrid/tracking/",
        _if_secured(SendGridTrackingView.as_view(), "WEBHOOK_SECRET"),
        name="sendgrid",
    ),
]
