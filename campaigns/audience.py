"""Who a campaign goes to: confirmed subscribers of its lists, once each, narrowed by
its segment, without blocklisted addresses."""

from __future__ import annotations

from django.db.models import QuerySet

from campaigns.models import Campaign
from lists import segments
from lists.blocklist import annotate_email_key, blocked_subscribers_q
from lists.models import MailingList, Subscriber, Subscription


def _audience(
    campaign: Campaign, lists: QuerySet[MailingList], id_range: tuple[int, int] | None = None
) -> QuerySet[Subscriber]:
    # Only the account's own lists count, whatever ids were passed in.
    on_lists = Subscription.objects.sendable().filter(
        mailing_list__in=lists.filter(owner=campaign.account)
    )
    if campaign.started_at is not None:
        # Who joins after the start is not in the audience: the id snapshot of the plan
        # keeps new subscribers out, this keeps out existing ones confirmed on a list since.
        on_lists = on_lists.filter(status_changed_at__lte=campaign.started_at)
    queryset = Subscriber.objects.filter(account=campaign.account)
    if id_range is not None:
        # The range inside the subquery too, so the database reads only that slice of
        # the (list, status, subscriber) index instead of the whole list.
        low, high = id_range
        on_lists = on_lists.filter(subscriber_id__gte=low, subscriber_id__lte=high)
        queryset = queryset.filter(id__gte=low, id__lte=high)
    # A subquery, not a join: a subscriber on several lists is one row (one copy).
    queryset = queryset.filter(id__in=on_lists.values("subscriber_id"))
    queryset = annotate_email_key(queryset).exclude(blocked_subscribers_q())
    if campaign.segment_id:
        queryset = queryset.filter(segments.compile(campaign.segment.definition, campaign.account))
    return queryset


def recipients(campaign: Campaign, id_range: tuple[int, int] | None = None) -> QuerySet[Subscriber]:
    """The campaign's audience as a Subscriber queryset (one row per subscriber),
    optionally only the subscriber ids from ``id_range[0]`` to ``id_range[1]``.

    Raises lists.segments.InvalidSegment if the campaign's segment no longer compiles.
    """
    return _audience(campaign, campaign.lists.all(), id_range)


def count(campaign: Campaign) -> int:
    try:
        return recipients(campaign).count()
    except segments.InvalidSegment:
        return 0


def count_for(campaign: Campaign, lists: QuerySet[MailingList]) -> int:
    """The audience size for lists not yet saved on the campaign (the form's live count)."""
    try:
        return _audience(campaign, lists).count()
    except segments.InvalidSegment:
        return 0


def remember_count(campaign: Campaign, size: int | None = None) -> int:
    """Stores the audience size (``size``, or counted now) on the campaign; returns it.

    Called when a draft is saved or scheduled: a stored number, not a live one, so the
    campaign index needs no audience query per row. It is as old as the last count.
    """
    if size is None:
        size = count(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(audience_size=size)
    campaign.audience_size = size
    return size
