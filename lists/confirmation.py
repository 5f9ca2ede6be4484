"""Subscriber mails of signup forms: the double opt-in confirmation and the welcome mail.

Texts come from the list (``MailingList.texts``) with the defaults here. A
confirmation mail never contains anything the form poster typed (no name, no
field): only the list's own texts and the signed link, so a form cannot be used
to send someone a message of the poster's choosing.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from lists.models import MailingList, SignupForm, Subscription
from mailpanel.lib import signing
from sending import backend

logger = logging.getLogger(__name__)

# Every public text, with its default. "{list}" is replaced by the list's name.
DEFAULT_TEXTS: dict[str, str] = {
    "confirm_subject": "Please confirm your subscription to {list}",
    "confirm_body": (
        "Someone, hopefully you, asked to subscribe this address to {list}.\n"
        "To confirm, open the link below and press the button.\n"
        "If it was not you, ignore this mail: you will not hear from us again."
    ),
    "confirm_page_title": "Confirm your subscription",
    "confirm_page_text": "Press the button to confirm your subscription to {list}.",
    "confirm_button": "Confirm my subscription",
    "confirmed_text": "Thank you: your subscription to {list} is confirmed.",
    "welcome_subject": "Welcome to {list}",
    "welcome_body": "Thank you for subscribing to {list}.",
    "unsubscribe_title": "Unsubscribe",
    "unsubscribe_text": "Press the button to stop receiving {list}.",
    "unsubscribe_button": "Unsubscribe",
    "unsubscribed_text": "You are unsubscribed from {list}. You will not receive it any more.",
    "unsubscribe_reason_label": "Why are you leaving? (optional)",
    "manage_link": "Manage all your subscriptions",
    "preferences_title": "Your subscriptions",
    "preferences_lists": "Your lists",
    "preferences_save": "Save",
    "preferences_saved": "Your preferences are saved.",
    "preferences_unsubscribe_all": "Unsubscribe from everything",
    "preferences_unsubscribed_all": "You are unsubscribed from everything.",
    "preferences_download": "Download my data (JSON)",
    "preferences_delete_link": "Delete me",
    "delete_title": "Delete your data",
    "delete_text": (
        "This removes your address, name and everything else we keep about you, "
        "from every list of this sender. It cannot be undone."
    ),
    "delete_button": "Delete my data",
    "deleted_title": "Deleted",
    "deleted_text": "Your data is deleted. Goodbye.",
    "preferences_name_label": "Name",
    "preferences_pending": "(waiting for your confirmation)",
    "preferences_bounced": "(our mail to you bounced)",
    "preferences_no_lists": "You are on no lists.",
    "preferences_blocked": (
        "This address is blocked, so it cannot be subscribed to {list} again. "
        "Please contact the sender if this is a mistake."
    ),
    "preferences_data_title": "Your data",
    "welcome_manage_link": "Manage your subscription",
    "welcome_unsubscribe_link": "Unsubscribe",
    "invalid_link_text": "This link is not valid or has expired.",
    # Signup form errors, in the wording of the form's first list.
    "signup_error_required": "This field is required.",
    "signup_error_email": "Enter a valid e-mail address: {reason}.",
    "signup_error_domain": "This address's domain cannot receive e-mail.",
    "signup_error_consent": "Please give your consent to subscribe.",
    "signup_error_lists": "Choose at least one list.",
    "signup_error_no_stamp": "Please send the form from its page.",
    "signup_error_too_fast": "That was very fast. Please check the form and send it again.",
    "signup_error_too_old": "This form was open for a long time. Please send it again.",
    "signup_error_rate_ip": "Too many signups from your address. Try later.",
    "signup_error_rate_form": "Too many signups right now. Try again later.",
}

TEXT_LABELS: dict[str, str] = {key: key.replace("_", " ").capitalize() for key in DEFAULT_TEXTS}
# Placeholders besides {list}, filled in where the text is used.
TEXT_PLACEHOLDERS: dict[str, str] = {
    "signup_error_email": "{reason} is replaced by what is wrong with the address.",
}


def text(mailing_list: MailingList | None, key: str, **values: str) -> str:
    """The list's wording of a text (or the default), with {list} and ``values`` filled in."""
    custom = mailing_list.texts.get(key) if mailing_list is not None else None
    value = custom if isinstance(custom, str) and custom.strip() else DEFAULT_TEXTS[key]
    value = value.replace("{list}", mailing_list.name if mailing_list is not None else "")
    for name, filling in values.items():
        value = value.replace("{" + name + "}", filling)
    return value


def texts(mailing_list: MailingList | None) -> dict[str, str]:
    """Every text in the list's wording, for templates (``{{ texts.delete_button }}``)."""
    return {key: text(mailing_list, key) for key in DEFAULT_TEXTS}


def _sender(mailing_list: MailingList) -> str:
    owner = mailing_list.owner
    address = mailing_list.from_email or owner.default_from_email or settings.DEFAULT_FROM_EMAIL
    name = mailing_list.from_name or owner.default_from_name
    return f'"{name}" <{address}>' if name else address


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def unsubscribe_links(subscriber_id: int, list_id: int, campaign_id: int | None = None) -> dict:
    """Absolute URLs of the unsubscribe page ("page") and the RFC 8058 endpoint ("one_click")."""
    token = signing.unsubscribe_token(subscriber_id, list_id, campaign_id)
    return {
        "page": absolute(reverse("public:unsubscribe", args=[token])),
        "one_click": absolute(reverse("public:one-click", args=[token])),
    }


def confirm_url(subscription_ids: list[int], form_id: int | None) -> str:
    token = signing.confirm_token(subscription_ids, form_id)
    return absolute(reverse("public:confirm", args=[token]))


def _send(
    mailing_list: MailingList,
    to: str,
    subject: str,
    body: str,
    link: str,
    label: str,
    *,
    unsubscribe: dict[str, str] | None = None,
) -> None:
    """``unsubscribe``: the subscriber's unsubscribe links (:func:`unsubscribe_links`) for a
    mail to someone on the list: shown under the main link and put in the headers."""
    context = {
        "mailing_list": mailing_list,
        "body": body,
        "link": link,
        "link_label": label,
        "unsubscribe_link": (unsubscribe or {}).get("page", ""),
        "unsubscribe_label": text(mailing_list, "welcome_unsubscribe_link"),
    }
    headers = {}
    if unsubscribe:
        # RFC 2369 and RFC 8058: mail providers offer their own button and POST to it.
        headers = {
            "List-Unsubscribe": f"<{unsubscribe['one_click']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("public/mail.txt", context),
        from_email=_sender(mailing_list),
        to=[to],
        reply_to=[mailing_list.reply_to] if mailing_list.reply_to else None,
        headers=headers,
    )
    message.attach_alternative(render_to_string("public/mail.html", context), "text/html")
    # The list owner's mail: their relays, their DKIM key, a return path naming the account.
    backend.belongs_to(message, mailing_list.owner_id)
    message.send()


def send_confirmation(subscription_ids: list[int], form_id: int | None) -> bool:
    """Mails the confirmation link for the still-pending subscriptions; False if none are.

    All subscriptions belong to one subscriber (one signup); the first list's texts
    and sender are used.
    """
    pending = list(
        Subscription.objects.filter(id__in=subscription_ids, status=Subscription.Status.PENDING)
        .select_related("mailing_list__owner", "subscriber")
        .order_by("id")
    )
    if not pending:
        return False
    mailing_list = pending[0].mailing_list
    link = confirm_url([s.id for s in pending], form_id)
    names = ", ".join(s.mailing_list.name for s in pending)
    mailing_list_for_text = MailingList(name=names, texts=mailing_list.texts)
    _send(
        mailing_list,
        pending[0].subscriber.email,
        text(mailing_list_for_text, "confirm_subject"),
        text(mailing_list_for_text, "confirm_body"),
        link,
        text(mailing_list, "confirm_button"),
    )
    return True


def send_welcome(subscription_id: int) -> bool:
    """Mails the list's welcome text to a confirmed subscriber, if the list wants one."""
    subscription = (
        Subscription.objects.filter(id=subscription_id, status=Subscription.Status.CONFIRMED)
        .select_related("mailing_list__owner", "subscriber")
        .first()
    )
    if subscription is None or not subscription.mailing_list.welcome_enabled:
        return False
    mailing_list = subscription.mailing_list
    token = signing.preference_token(subscription.subscriber_id)
    _send(
        mailing_list,
        subscription.subscriber.email,
        text(mailing_list, "welcome_subject"),
        text(mailing_list, "welcome_body"),
        absolute(reverse("public:preferences", args=[token])),
        text(mailing_list, "welcome_manage_link"),
        unsubscribe=unsubscribe_links(subscription.subscriber_id, mailing_list.id),
    )
    return True


def form_of(form_id: int | None) -> SignupForm | None:
    if not form_id:
        return None
    return SignupForm.objects.filter(id=form_id).first()
