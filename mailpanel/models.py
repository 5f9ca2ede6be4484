from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractUser
from django.db import models


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class User(AbstractUser):
    """A person who signs in: a list owner, a delegate, or (staff) an operator.

    Everything a user creates belongs to that user's account.
    """

    time_zone = models.CharField(max_length=64, default="UTC")
    default_from_name = models.CharField("default sender name", max_length=200, blank=True)
    default_from_email = models.EmailField("default sender address", blank=True)
    # Bulk-mail rules (CAN-SPAM, the EU's e-commerce rules) want the sender's postal
    # address in every campaign: it fills {{ sender.address }}; a list may override it.
    postal_address = models.TextField(
        "postal address",
        blank=True,
        help_text="Organisation name and postal address, shown in the footer of campaigns.",
    )

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    def tzinfo(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")
