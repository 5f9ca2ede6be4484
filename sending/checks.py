"""System checks of the sending configuration (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError


@register(Tags.compatibility)
def check_verified_sending_domain(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """With REQUIRE_VERIFIED_SENDER_DOMAIN on, no campaign can be scheduled until some
    domain is verified: say so before an owner finds out."""
    if not settings.REQUIRE_VERIFIED_SENDER_DOMAIN:
        return []
    from sending.models import SendingDomain

    try:
        verified = SendingDomain.objects.filter(verified_at__isnull=False).exists()
    except DatabaseError:
        # Not migrated yet (``migrate`` itself runs the checks): nothing to say.
        return []
    if verified:
        return []
    return [
        Warning(
            "No sending domain is verified, and REQUIRE_VERIFIED_SENDER_DOMAIN is on: "
            "no campaign can be scheduled.",
            hint="Add a sending domain (admin, or an account's Sending domains page), publish "
            "its DKIM record and run “Check DNS”; or set REQUIRE_VERIFIED_SENDER_DOMAIN=false.",
            id="sending.W001",
        )
    ]
