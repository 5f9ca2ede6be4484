"""The live delivery panel, for pages of other apps (the campaign page) to include."""

from __future__ import annotations

from django import template

from campaigns.models import Campaign
from sending import progress

register = template.Library()

# A scheduled campaign is polled too, so its first messages show up without a reload.
LIVE = (Campaign.Status.SCHEDULED, Campaign.Status.SENDING)


@register.inclusion_tag("sending/_progress.html")
def send_progress(campaign: Campaign) -> dict[str, object]:
    """The panel that ``sending:campaign-progress`` then refreshes while it is live."""
    return {"campaign": campaign, "progress": progress.of(campaign), "live": live(campaign)}


def live(campaign: Campaign) -> bool:
    return campaign.status in LIVE
