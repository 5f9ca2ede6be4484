"""What was sent to a subscriber and what came of it, for the subscriber page.

The page shows the latest deliveries and the latest events only, each in a fixed
number of queries whatever the number of rows; the whole history is the statistics
timeline's (stats.timeline, whose functions this module reuses for the events).
Deliveries are those of the subscriber's account's campaigns. A delegate sees, like on
the timeline, only what concerns the lists granted to them: the events on those lists,
and the deliveries of campaigns sent to one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from campaigns.models import Campaign
from lists.models import MailingList, Subscriber
from sending.models import Delivery
from stats import timeline

SHOWN = 10


@dataclass
class Activity:
    deliveries: list[Delivery] = field(default_factory=list)
    more_deliveries: bool = False
    # stats.timeline.describe rows: {"event", "campaign", "url", "detail"}.
    events: list[dict] = field(default_factory=list)
    more_events: bool = False


def granted_lists(subscriber: Subscriber, user: object) -> QuerySet[MailingList] | None:
    """None for the account's owner (everything); else the lists delegated to the user."""
    if subscriber.account_id == getattr(user, "pk", None):
        return None
    return MailingList.objects.visible_to(user).exclude(owner=user)


def recent(
    subscriber: Subscriber, granted: QuerySet[MailingList] | None, limit: int = SHOWN
) -> Activity:
    """The latest ``limit`` deliveries and events; four queries at most, for any number."""
    deliveries = Delivery.objects.filter(
        subscriber_id=subscriber.id, campaign__account_id=subscriber.account_id
    )
    if granted is not None:
        sent_to_granted = Campaign.objects.filter(
            account_id=subscriber.account_id, lists__in=granted.values("id")
        ).values("id")
        deliveries = deliveries.filter(campaign_id__in=sent_to_granted)
    rows = list(
        deliveries.select_related("campaign")
        .only("status", "created_at", "sent_at", "campaign__uuid", "campaign__name")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    events = timeline.events_of(subscriber, granted)
    # The timeline's own first page, cut to the few rows the subscriber page shows.
    page = timeline.page(events, {}, "", size=limit)
    return Activity(
        deliveries=rows[:limit],
        more_deliveries=len(rows) > limit,
        events=timeline.describe(page.rows, subscriber.account_id),
        more_events=bool(page.next_url),
    )
