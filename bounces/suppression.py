"""The bounce rules: what a stored BounceEvent does to subscriptions, and lifting it again.

Hard bounces and complaints suppress the address in every list of its account at once; soft
bounces suppress after soft bounces on N distinct days within W days; refusals of the sender
never touch the recipient but are counted per relay and receiving domain, with an alert to the
operators past a threshold. Statuses change only through lists.subscriptions.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import mail_admins, send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.db.models.functions import TruncDate
from django.utils import timezone

from bounces import rules
from bounces.models import BounceEvent, SenderSideAlert, SenderSideCounter, SuppressionPolicy
from lists import subscriptions
from lists.models import Subscriber, Subscription, SubscriptionChange

logger = logging.getLogger(__name__)

Status = Subscription.Status
SOURCE = "bounce"
# Only live subscriptions are suppressed: an unsubscribed address stays unsubscribed.
LIVE = (Status.CONFIRMED, Status.PENDING)
SUPPRESSED = (Status.BOUNCED, Status.COMPLAINED)


def apply(event: BounceEvent) -> int:
    """Runs the account's rules on a stored event; returns how many subscriptions changed.

    Idempotent: an event already applied changes nothing.
    """
    with transaction.atomic():
        claimed = BounceEvent.objects.filter(id=event.id, applied=False).update(applied=True)
        if not claimed:
            return 0
        event.applied = True
        changed = _act(event)
    if event.bounce_class == rules.SENDER_SIDE:
        count_sender_side(event)
    return changed


def _act(event: BounceEvent) -> int:
    subscriber = event.subscriber
    if subscriber is None:
        return 0
    policy = SuppressionPolicy.for_account(subscriber.account_id)
    klass = event.bounce_class
    note = _note(event)
    if klass == rules.HARD and policy.suppress_hard:
        return _set(subscriber, Status.BOUNCED, note)
    if klass == rules.COMPLAINT and policy.suppress_complaint:
        return _set(subscriber, Status.COMPLAINED, note)
    if klass == rules.UNSUBSCRIBE_REQUEST:
        return _set(subscriber, Status.UNSUBSCRIBED, note)
    if klass == rules.SOFT and soft_bounce_days(subscriber, policy) >= policy.soft_bounce_days:
        days = f"{policy.soft_bounce_days} days within {policy.soft_bounce_window_days}"
        return _set(subscriber, Status.BOUNCED, f"soft bounces on {days}; last: {note}")
    return 0


def _set(subscriber: Subscriber, status: str, note: str) -> int:
    return subscriptions.set_status_everywhere(
        subscriber, status, source=SOURCE, note=note[:500], only_from=LIVE
    )


def _note(event: BounceEvent) -> str:
    code = " ".join(filter(None, [event.status_code, event.reply_code]))
    text = event.diagnostic[:300]
    return f"{event.get_bounce_class_display()} {code}: {text}".strip(" :")


def soft_bounce_days(subscriber: Subscriber, policy: SuppressionPolicy) -> int:
    """Distinct days with a soft bounce inside the window, counted after the last lift."""
    since = timezone.now() - timedelta(days=policy.soft_bounce_window_days)
    lifted = SubscriptionChange.objects.filter(
        subscription__subscriber=subscriber, old_status__in=SUPPRESSED
    ).aggregate(at=Max("created_at"))["at"]
    if lifted and lifted > since:
        since = lifted
    return (
        BounceEvent.objects.filter(
            subscriber=subscriber, bounce_class=rules.SOFT, received_at__gte=since
        )
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .distinct()
        .count()
    )


def count_sender_side(event: BounceEvent) -> SenderSideCounter:
    """Adds the refusal to its relay/domain/day counter, and alerts once over the threshold."""
    day = timezone.localdate(event.received_at)
    key = {"relay_id": event.relay_id, "receiving_domain": event.receiving_domain, "day": day}
    try:
        with transaction.atomic():
            counter, _ = SenderSideCounter.objects.get_or_create(**key)
    except IntegrityError:  # created concurrently by another intake
        counter = SenderSideCounter.objects.get(**key)
    SenderSideCounter.objects.filter(id=counter.id).update(count=F("count") + 1)
    counter.refresh_from_db(fields=["count"])
    # The counter is shared by every account sending through the relay: its threshold is the
    # operators' setting, not the policy of whichever account's refusal crossed it.
    if counter.count >= settings.BOUNCE_SENDER_SIDE_ALERT_THRESHOLD:
        _raise_alert(counter, event)
    return counter


def _raise_alert(counter: SenderSideCounter, event: BounceEvent) -> None:
    try:
        with transaction.atomic():
            alert, created = SenderSideAlert.objects.get_or_create(
                counter=counter,
                defaults={"count_at_raise": counter.count, "sample_diagnostic": event.diagnostic},
            )
    except IntegrityError:  # another intake raised it at the same moment
        return
    if created:
        transaction.on_commit(lambda: notify_operators(alert))


def notify_operators(alert: SenderSideAlert) -> None:
    """Mails the site admins (settings.ADMINS) and every active staff user with an address."""
    counter = alert.counter
    subject = (
        f"Mail refused because of the sender: {counter.receiving_domain} "
        f"via {counter.relay or 'no relay'}"
    )
    body = (
        f"{counter.count} messages to {counter.receiving_domain} sent through "
        f"{counter.relay or 'no relay'} were refused on {counter.day} because of the sender "
        "(block list, reputation, policy or authentication). Recipients were not suppressed.\n\n"
        f"Example reply: {alert.sample_diagnostic[:1000]}\n\n"
        "See Sender-side alerts in the admin."
    )
    mail_admins(subject, body, fail_silently=True)
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    recipients = list(staff.values_list("email", flat=True))
    if recipients:
        send_mail(subject, body, None, recipients, fail_silently=True)


def suppressed_subscriptions(subscriber: Subscriber) -> list[Subscription]:
    return list(
        subscriber.subscriptions.filter(status__in=SUPPRESSED).select_related("mailing_list")
    )


@transaction.atomic
def lift(subscriber: Subscriber, *, actor: object, note: str) -> int:
    """Turns the subscriber's bounced/complained subscriptions back to confirmed.

    The note is kept in each subscription's history; returns how many changed. Soft bounces
    before the lift no longer count towards the soft rule.
    """
    changed = 0
    for subscription in subscriber.subscriptions.select_for_update().filter(status__in=SUPPRESSED):
        changed += subscriptions.change_status(
            subscription,
            Status.CONFIRMED,
            source=Subscription.Source.PANEL,
            actor=actor,
            note=f"suppression lifted: {note}"[:500],
        )
    return changed
