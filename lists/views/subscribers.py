"""Subscriber pages: detail, add to a list, edit, delete, per-list (un)subscribe, blocklist.

Access: a subscriber is reached through Subscriber.objects.visible_to (not visible:
404) and changed only if editable_by (a viewer: 403). Changes that reach beyond
the lists a user was granted (deleting the subscriber, blocking the address for
the whole account) are the account owner's.
"""

from __future__ import annotations

import uuid as uuid_module

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from bounces import reports as bounce_reports
from bounces import suppression
from lists import activity, addresses, blocklist, preferences, subscriptions
from lists.access import get_list_for_user
from lists.models import (
    CustomField,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionChange,
)
from lists.subscriber_forms import AddSubscriberForm, ReasonForm, ResubscribeForm, SubscriberForm

Status = Subscription.Status
BADGE = {
    Status.CONFIRMED: "ok",
    Status.PENDING: "warn",
    Status.UNSUBSCRIBED: "",
    Status.BOUNCED: "danger",
    Status.COMPLAINED: "danger",
}
VOUCH_NOTE = "Resubscribed in the panel; the list owner vouched for consent."


def _get_subscriber_for_user(
    request: HttpRequest, subscriber_uuid: uuid_module.UUID, *, write: bool = False
) -> Subscriber:
    subscriber = get_object_or_404(
        Subscriber.objects.visible_to(request.user).select_related("account"),
        uuid=subscriber_uuid,
    )
    if write and not Subscriber.objects.editable_by(request.user).filter(id=subscriber.id).exists():
        raise PermissionDenied("You may only view this subscriber.")
    return subscriber


def _require_account_owner(request: HttpRequest, subscriber: Subscriber) -> None:
    if subscriber.account_id != request.user.pk:
        raise PermissionDenied("Only the account owner may do this.")


def _get_subscription_for_user(
    request: HttpRequest, subscriber: Subscriber, list_uuid: uuid_module.UUID
) -> Subscription:
    """The subscriber's subscription on a list the user may see (else 404) and change (403)."""
    subscription = get_object_or_404(
        Subscription.objects.select_related("mailing_list").filter(
            subscriber=subscriber,
            mailing_list__in=MailingList.objects.visible_to(request.user),
        ),
        mailing_list__uuid=list_uuid,
    )
    editable = MailingList.objects.editable_by(request.user)
    if not editable.filter(id=subscription.mailing_list_id).exists():
        raise PermissionDenied("You may only view this list.")
    return subscription


def _custom_fields(account_id: int) -> list[CustomField]:
    return list(CustomField.objects.filter(account_id=account_id))


def _detail_url(subscriber: Subscriber) -> str:
    return reverse("lists:subscriber-detail", args=[subscriber.uuid])


@login_required
def subscriber_detail(request: HttpRequest, uuid: uuid_module.UUID) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid)
    visible_lists = MailingList.objects.visible_to(request.user)
    subscription_rows = list(
        subscriber.subscriptions.filter(mailing_list__in=visible_lists)
        .select_related("mailing_list")
        .prefetch_related(
            Prefetch("changes", queryset=SubscriptionChange.objects.select_related("actor"))
        )
        .order_by("mailing_list__name", "id")
    )
    editable_ids = set(
        MailingList.objects.editable_by(request.user)
        .filter(id__in=[s.mailing_list_id for s in subscription_rows])
        .values_list("id", flat=True)
    )
    for row in subscription_rows:
        row.badge = BADGE.get(row.status, "")
        row.can_change = row.mailing_list_id in editable_ids
    defined = _custom_fields(subscriber.account_id)
    labels = {field.key: field.label for field in defined}
    field_rows = [(labels.get(key, key), value) for key, value in subscriber.fields.items()]
    is_owner = subscriber.account_id == request.user.pk
    context = {
        "subscriber": subscriber,
        "subscriptions": subscription_rows,
        "field_rows": field_rows,
        "consent_rows": sorted(subscriber.consent.items()),
        "is_blocked": blocklist.is_blocked(subscriber.email, subscriber.account),
        "can_edit": is_owner
        or Subscriber.objects.editable_by(request.user).filter(id=subscriber.id).exists(),
        "is_account_owner": is_owner,
        # Why mail stopped: the bounce events, and what the owner may lift.
        "bounce_events": bounce_reports.for_subscriber(subscriber),
        "suppressed": suppression.suppressed_subscriptions(subscriber) if is_owner else [],
        # What was sent and what came of it: the latest only, the timeline has the rest.
        "activity": activity.recent(subscriber, activity.granted_lists(subscriber, request.user)),
    }
    return render(request, "lists/subscriber_detail.html", context)


@login_required
def subscriber_add(request: HttpRequest, list_uuid: uuid_module.UUID) -> HttpResponse:
    mailing_list, _role = get_list_for_user(request, list_uuid, write=True)
    account = mailing_list.owner
    form = AddSubscriberForm(request.POST or None, custom_fields=_custom_fields(account.pk))
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if blocklist.is_blocked(email, account):
            form.add_error(
                "email", f"{email} is on the blocklist, so it cannot be added to a list."
            )
        elif preferences.is_suppressed(account, email):
            form.add_error("email", preferences.ERASED_ERROR.format(email=email))
        else:
            return _add_to_list(request, mailing_list, form)
    return render(
        request, "lists/subscriber_form.html", {"form": form, "mailing_list": mailing_list}
    )


def _add_to_list(
    request: HttpRequest, mailing_list: MailingList, form: AddSubscriberForm
) -> HttpResponse:
    data = form.cleaned_data
    with transaction.atomic():
        subscriber, created = subscriptions.find_or_create_subscriber(
            mailing_list.owner, data["email"], name=data["name"], fields=form.field_values
        )
        if created and data["status"] == Status.CONFIRMED:
            subscriber.consent = {
                "source": "panel",
                "at": timezone.now().isoformat(),
                "by": request.user.get_username(),
                "text": "Added in the panel as confirmed; the list owner vouched for consent.",
            }
            subscriber.save(update_fields=["consent", "updated_at"])
        existing = Subscription.objects.filter(
            mailing_list=mailing_list, subscriber=subscriber
        ).first()
        if existing is not None:
            # Never flip an existing subscription from here: an unsubscribed person comes
            # back only through the resubscribe page, which asks the owner to vouch.
            messages.info(
                request,
                f"{subscriber.email} is already on this list ({existing.get_status_display()}).",
            )
            return redirect(_detail_url(subscriber))
        if not created:
            _fill_in(subscriber, data["name"], form.field_values)
        subscriptions.subscribe(
            mailing_list,
            subscriber,
            status=data["status"],
            source=Subscription.Source.PANEL,
            actor=request.user,
        )
    verb = "Added" if created else "Added the existing subscriber"
    messages.success(request, f"{verb} {subscriber.email} to {mailing_list.name}.")
    return redirect(_detail_url(subscriber))


def _fill_in(subscriber: Subscriber, name: str, values: dict[str, object]) -> None:
    """Values typed in the add form update an existing subscriber; blanks keep theirs."""
    changed = []
    if name and name != subscriber.name:
        subscriber.name = name
        changed.append("name")
    if values:
        subscriber.fields = {**subscriber.fields, **values}
        changed.append("fields")
    if changed:
        subscriber.save(update_fields=[*changed, "updated_at"])


@login_required
def subscriber_edit(request: HttpRequest, uuid: uuid_module.UUID) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid, write=True)
    defined = _custom_fields(subscriber.account_id)
    form = SubscriberForm(request.POST or None, custom_fields=defined, subscriber=subscriber)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        email_changed = addresses.comparison_key(email) != addresses.comparison_key(
            subscriber.email
        )
        if email_changed and blocklist.is_blocked(email, subscriber.account):
            form.add_error("email", f"{email} is on the blocklist.")
        elif _save_edit(subscriber, form, {field.key for field in defined}):
            messages.success(request, "Subscriber saved.")
            return redirect(_detail_url(subscriber))
    return render(request, "lists/subscriber_form.html", {"form": form, "subscriber": subscriber})


def _save_edit(subscriber: Subscriber, form: SubscriberForm, defined_keys: set[str]) -> bool:
    email = form.cleaned_data["email"]
    subscriber.email = email
    subscriber.domain = addresses.domain_of(email)
    subscriber.name = form.cleaned_data["name"]
    # Values under keys that are no longer defined (old imports) are kept, not lost.
    kept = {k: v for k, v in subscriber.fields.items() if k not in defined_keys}
    subscriber.fields = {**kept, **form.field_values}
    try:
        with transaction.atomic():
            subscriber.save(update_fields=["email", "domain", "name", "fields", "updated_at"])
    except IntegrityError:
        # Someone took the address between the form's check and the save.
        form.add_error("email", f"Another subscriber of this account already has {email}.")
        return False
    return True


@login_required
def subscriber_delete(request: HttpRequest, uuid: uuid_module.UUID) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid, write=True)
    _require_account_owner(request, subscriber)
    if request.method == "POST":
        subscriptions.delete_subscriber(subscriber)
        messages.success(request, f"Deleted {subscriber.email} and all their subscriptions.")
        return redirect("lists:index")
    count = subscriber.subscriptions.count()
    return render(
        request,
        "lists/subscriber_confirm_delete.html",
        {"subscriber": subscriber, "subscription_count": count},
    )


@login_required
@require_POST
def subscriber_unsubscribe(
    request: HttpRequest, uuid: uuid_module.UUID, list_uuid: uuid_module.UUID
) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid, write=True)
    subscription = _get_subscription_for_user(request, subscriber, list_uuid)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    changed = subscriptions.unsubscribe(
        subscription, source=Subscription.Source.PANEL, reason=reason, actor=request.user
    )
    if changed:
        messages.success(request, f"Unsubscribed from {subscription.mailing_list.name}.")
    else:
        messages.info(request, f"Already unsubscribed from {subscription.mailing_list.name}.")
    return redirect(_detail_url(subscriber))


@login_required
def subscriber_resubscribe(
    request: HttpRequest, uuid: uuid_module.UUID, list_uuid: uuid_module.UUID
) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid, write=True)
    subscription = _get_subscription_for_user(request, subscriber, list_uuid)
    form = ResubscribeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if blocklist.is_blocked(subscriber.email, subscriber.account):
            messages.error(request, f"{subscriber.email} is on the blocklist.")
            return redirect(_detail_url(subscriber))
        subscriptions.change_status(
            subscription,
            Status.CONFIRMED,
            source=Subscription.Source.PANEL,
            actor=request.user,
            note=VOUCH_NOTE,
        )
        messages.success(request, f"Subscribed again to {subscription.mailing_list.name}.")
        return redirect(_detail_url(subscriber))
    return render(
        request,
        "lists/subscriber_resubscribe.html",
        {"subscriber": subscriber, "subscription": subscription, "form": form},
    )


@login_required
@require_POST
def subscriber_blocklist(request: HttpRequest, uuid: uuid_module.UUID) -> HttpResponse:
    subscriber = _get_subscriber_for_user(request, uuid, write=True)
    _require_account_owner(request, subscriber)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    result = blocklist.add_entries(
        subscriber.email, account=subscriber.account, reason=reason, actor=request.user
    )
    if result.added:
        messages.success(request, f"{subscriber.email} is blocked: no more mail will go to it.")
    else:
        messages.info(request, f"{subscriber.email} was already on the blocklist.")
    return redirect(_detail_url(subscriber))
