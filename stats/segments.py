"""Engagement conditions for segments, registered with lists.segments at start-up.

- ``{"type": "opened", "days": 30}`` — a person (not a privacy proxy) opened any campaign
  for the first time within the last 30 days; with ``"campaign": "<uuid>"``, that campaign;
- ``{"type": "clicked", "days": 30[, "campaign": ...]}`` — the same for clicks;
- ``{"type": "never_opened"}`` — no campaign was ever opened by a person; with
  ``"campaign"``, the campaign was sent to the subscriber and they did not open it.

They compile to ``Exists`` subqueries over ``DeliveryEngagement`` on the subscriber, which
its ``(subscriber, first_human_open_at)`` and ``(subscriber, first_human_click_at)`` indexes
serve; the log itself is never read. The rollup keeps the *first* human open and click
per delivery, so "within N days" means a delivery first opened (clicked) in that window.
A campaign is looked up among the account's own: another account's campaign is
"unknown", in the same words as one that does not exist.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign
from lists import segments
from lists.segments import Condition, Context, EditorRows, SubjectGroups
from sending.models import Delivery
from stats.models import DeliveryEngagement

MAX_DAYS = 3650
EDITOR_CAMPAIGNS = 20
WITHIN = "within_days"
NEVER = "never"
FIRST_AT = {"opened": "first_human_open_at", "clicked": "first_human_click_at"}


def _campaign(condition: Condition, context: Context) -> Campaign | None:
    try:
        key = uuid.UUID(str(condition.get("campaign")))
    except ValueError:
        return None
    return Campaign.objects.owned_by(context.account).filter(uuid=key).only("id").first()


def _days(condition: Condition) -> int | None:
    value = condition.get("days")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        return None
    return value


def _validate_campaign(condition: Condition, context: Context) -> list[str]:
    if condition.get("campaign") in (None, "") or _campaign(condition, context) is not None:
        return []
    return [f"unknown campaign {condition.get('campaign')!r}"]


def _validate_within(condition: Condition, context: Context) -> list[str]:
    errors = _validate_campaign(condition, context)
    if _days(condition) is None:
        errors.append(f"days must be a whole number from 1 to {MAX_DAYS}")
    return errors


def _engagements(condition: Condition, context: Context) -> QuerySet[DeliveryEngagement]:
    engagements = DeliveryEngagement.objects.filter(subscriber=OuterRef("pk"))
    if condition.get("campaign"):
        engagements = engagements.filter(campaign=_campaign(condition, context))
    return engagements


def _compile_within(kind: str) -> segments.Compiler:
    def compile_condition(condition: Condition, context: Context) -> Q:
        since = timezone.now() - datetime.timedelta(days=_days(condition))
        engaged = _engagements(condition, context).filter(**{f"{FIRST_AT[kind]}__gte": since})
        return Q(Exists(engaged))

    return compile_condition


def _compile_never_opened(condition: Condition, context: Context) -> Q:
    opened = _engagements(condition, context).filter(first_human_open_at__isnull=False)
    if not condition.get("campaign"):
        return ~Q(Exists(opened))
    received = Delivery.objects.filter(
        subscriber=OuterRef("pk"),
        campaign=_campaign(condition, context),
        status=Delivery.Status.SENT,
    )
    return Q(Exists(received)) & ~Q(Exists(opened))


# --- The editor's rows -------------------------------------------------------------------


def _recent_campaigns(context: Context) -> list[tuple[str, str]]:
    campaigns = (
        Campaign.objects.owned_by(context.account)
        .filter(started_at__isnull=False)
        .order_by("-started_at", "-id")
        .values_list("uuid", "name")[:EDITOR_CAMPAIGNS]
    )
    return [(str(u), name) for u, name in campaigns]


def _subjects(
    kind: str, any_label: str, one_label: str, op: str
) -> Callable[[Context], SubjectGroups]:
    def subjects(context: Context) -> SubjectGroups:
        options = [(kind, any_label, op)]
        options += [
            (f"{kind}:{u}", one_label.format(name), op) for u, name in _recent_campaigns(context)
        ]
        return [(any_label, options)]

    return subjects


def _row_maker(kind: str) -> EditorRows:
    def to_condition(target: str, op: str, value: str) -> Condition:
        condition: Condition = {"type": kind}
        if kind != "never_opened":
            condition["days"] = int(value) if value.strip().isdigit() else value
        if target:
            condition["campaign"] = target
        return condition

    def to_row(condition: Condition) -> dict:
        target = f":{condition['campaign']}" if condition.get("campaign") else ""
        op = NEVER if kind == "never_opened" else WITHIN
        value = "" if kind == "never_opened" else condition.get("days", "")
        return {"what": f"{kind}{target}", "op": op, "value": value}

    labels = {
        "opened": ("Opened any campaign", "Opened {}", WITHIN),
        "clicked": ("Clicked in any campaign", "Clicked in {}", WITHIN),
        "never_opened": ("Never opened a campaign", "Was sent {} and did not open it", NEVER),
    }
    return EditorRows(
        subjects=_subjects(kind, *labels[kind]),
        ops=((WITHIN, "within the last … days"), (NEVER, "ever")),
        to_condition=to_condition,
        to_row=to_row,
        valueless=(NEVER,),
    )


def register_all() -> None:
    segments.register(
        "opened",
        label="Opened within N days",
        validate=_validate_within,
        compile=_compile_within("opened"),
        editor=_row_maker("opened"),
    )
    segments.register(
        "clicked",
        label="Clicked within N days",
        validate=_validate_within,
        compile=_compile_within("clicked"),
        editor=_row_maker("clicked"),
    )
    segments.register(
        "never_opened",
        label="Never opened",
        validate=_validate_campaign,
        compile=_compile_never_opened,
        editor=_row_maker("never_opened"),
    )
