"""The one way statistics views reach their objects; anyone else's object is a 404.

- campaigns: owner only (as campaigns.access: a delegate does not see the account's
  campaigns, which may span lists they have no access to);
- lists: the owner and the list's delegates (viewer or manager), through lists.access;
- subscribers: those the user may see; a delegate's view of the timeline is narrowed
  to the lists granted to them;
- failure reports: the account's own, and every-account reports for operators.
"""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from campaigns import access as campaign_access
from campaigns.models import Campaign
from lists.access import get_list_for_user
from lists.models import MailingList, Subscriber
from stats import reports
from stats.models import FailureReport


def get_campaign(request: HttpRequest, campaign_id: uuid.UUID) -> Campaign:
    return campaign_access.get_campaign(request, campaign_id)


def get_list(request: HttpRequest, list_uuid: uuid.UUID) -> tuple[MailingList, str]:
    """(mailing_list, role); read access is enough for statistics."""
    return get_list_for_user(request, list_uuid)


def get_subscriber(
    request: HttpRequest, subscriber_id: uuid.UUID
) -> tuple[Subscriber, QuerySet[MailingList] | None]:
    """(subscriber, the lists whose events the user may see: None means all of them)."""
    subscriber = get_object_or_404(Subscriber.objects.visible_to(request.user), uuid=subscriber_id)
    if subscriber.account_id == request.user.pk:
        return subscriber, None
    return subscriber, MailingList.objects.visible_to(request.user).exclude(owner=request.user)


def get_report(request: HttpRequest, report_id: uuid.UUID) -> FailureReport:
    return get_object_or_404(reports.visible_reports(request.user), uuid=report_id)
