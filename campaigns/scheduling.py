"""The campaign lifecycle: draft -> scheduled -> sending -> sent, with paused and
cancelled. Every change is a conditional update on the status, so two clicks, two
tabs or a racing dispatcher cannot both win.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from django.db import transaction
from django.db.models import Case, DateTimeField, F, Q, QuerySet, Value, When
from django.utils import timezone

from campaigns import freezing
from campaigns.models import Attachment, Campaign

logger = logging.getLogger(__name__)
Status = Campaign.Status


class TransitionError(Exception):
    """The campaign is not in a state that allows the change (someone else changed it)."""


def local_to_utc(value: dt.datetime, time_zone: str) -> dt.datetime:
    """A naive date and time in the account's time zone, as an aware UTC datetime."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    if timezone.is_aware(value):
        return value.astimezone(dt.UTC)
    return value.replace(tzinfo=zone).astimezone(dt.UTC)


def _move(
    campaign: Campaign, sources: tuple[str, ...], condition: Q | None = None, **changes: object
) -> None:
    rows = Campaign.objects.filter(pk=campaign.pk, status__in=sources)
    updated = rows.filter(condition or Q()).update(**changes, updated_at=timezone.now())
    if updated != 1:
        raise TransitionError(f"campaign {campaign.pk} is no longer {' or '.join(sources)}")
    for name, value in changes.items():
        setattr(campaign, name, value)


def schedule(campaign: Campaign, send_at: dt.datetime | None = None) -> None:
    """Freezes the campaign and schedules it (``send_at`` None: now).

    Raises merge.MergeError if it does not merge, TransitionError if not a draft.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != Status.DRAFT:
            raise TransitionError(f"campaign {campaign.pk} is {locked.status}, not a draft")
        freezing.freeze(locked)
        _move(
            campaign,
            (Status.DRAFT,),
            status=Status.SCHEDULED,
            send_at=send_at or now,
            scheduled_at=now,
        )
        campaign.frozen_at = locked.frozen_at


# Unscheduling is for campaigns nobody has received yet: scheduled ones, and paused
# ones that never started (e.g. held back after missing their grace period).
NEVER_STARTED = Q(status=Status.SCHEDULED) | Q(status=Status.PAUSED, started_at__isnull=True)


def can_unschedule(campaign: Campaign) -> bool:
    return campaign.status == Status.SCHEDULED or (
        campaign.status == Status.PAUSED and campaign.started_at is None
    )


def unschedule(campaign: Campaign) -> None:
    """Back to draft; the frozen form is dropped (editing a draft unfreezes it).

    Raises TransitionError unless the campaign is scheduled or paused before it started.
    """
    with transaction.atomic():
        _move(
            campaign,
            (Status.SCHEDULED, Status.PAUSED),
            NEVER_STARTED,
            status=Status.DRAFT,
            send_at=None,
            scheduled_at=None,
        )
        freezing.unfreeze(campaign)


def start(campaign: Campaign) -> None:
    """Called by the dispatcher when it claims a due campaign."""
    _move(campaign, (Status.SCHEDULED,), status=Status.SENDING, started_at=timezone.now())


def finish(campaign: Campaign) -> None:
    _move(campaign, (Status.SENDING,), status=Status.SENT, finished_at=timezone.now())


def pause(campaign: Campaign) -> None:
    _move(campaign, (Status.SCHEDULED, Status.SENDING), status=Status.PAUSED)


def resume(campaign: Campaign) -> None:
    """A paused campaign goes on sending if it had started, else waits for its time.

    One that never started and whose time has passed is due now: the owner resuming it
    accepts the lateness (the dispatcher would otherwise find it past its grace period
    again, pause it again and mail the owner again). Raises TransitionError if not paused.
    """
    now = timezone.now()
    try:
        # Whether it started is read in the same conditional update: the dispatcher may
        # have started it after this object was loaded.
        _move(campaign, (Status.PAUSED,), Q(started_at__isnull=False), status=Status.SENDING)
        return
    except TransitionError:
        pass
    due_now = Case(
        When(send_at__gt=now, then=F("send_at")), default=Value(now), output_field=DateTimeField()
    )
    _move(campaign, (Status.PAUSED,), Q(started_at__isnull=True), status=Status.SCHEDULED,
          send_at=due_now)  # fmt: skip
    campaign.refresh_from_db(fields=["send_at"])


def cancel(campaign: Campaign) -> None:
    _move(
        campaign,
        (Status.SCHEDULED, Status.SENDING, Status.PAUSED),
        status=Status.CANCELLED,
        finished_at=timezone.now(),
    )


def due_campaigns(now: dt.datetime | None = None) -> QuerySet[Campaign]:
    """Scheduled campaigns whose time has come, oldest first (uses the partial index).

    The dispatcher adds ``select_for_update(skip_locked=True)`` inside its transaction.
    """
    return Campaign.objects.filter(
        status=Status.SCHEDULED, send_at__lte=now or timezone.now()
    ).order_by("send_at", "id")


def edited(campaign: Campaign) -> None:
    """After an edit: a draft loses its frozen form, a scheduled campaign is frozen anew."""
    if campaign.status == Status.SCHEDULED:
        freezing.freeze(campaign)
    elif campaign.frozen_at is not None:
        freezing.unfreeze(campaign)


def duplicate(campaign: Campaign, name: str | None = None) -> Campaign:
    """A new draft with the same content, audience and attachments (files shared)."""
    fields = [
        "account",
        "subject",
        "preheader",
        "from_name",
        "from_email",
        "reply_to",
        "segment",
        "template",
        "body",
        "body_format",
        "text_body",
        "text_edited",
        "track_opens",
        "track_clicks",
        "spread_over_hours",
        "max_per_hour",
        "publish_in_archive",
    ]
    with transaction.atomic():
        copy = Campaign.objects.create(
            name=name or f"Copy of {campaign.name}"[:200],
            **{f: getattr(campaign, f) for f in fields},
        )
        copy.lists.set(campaign.lists.all())
        for attachment in campaign.attachments.all():
            Attachment.objects.create(
                campaign=copy,
                file=attachment.file.name,
                name=attachment.name,
                size=attachment.size,
                content_type=attachment.content_type,
            )
    return copy
