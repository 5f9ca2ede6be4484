"""Test sends: a campaign merged for sample (or first-subscriber) values and mailed to up
to ten addresses through Django's mail backend, marked as a test and never counted."""

from __future__ import annotations

import logging

from django.core.mail import EmailMultiAlternatives, get_connection

from campaigns import audience, links, preview
from campaigns.models import Campaign

logger = logging.getLogger(__name__)
MAX_ADDRESSES = 10


def send_test(campaign: Campaign, addresses: list[str]) -> int:
    """Mails the test; returns how many messages the backend accepted."""
    subscriber = audience.recipients(campaign).order_by("id").first()
    subject, html, text = preview.render(campaign, subscriber)
    context = preview.recipient(campaign, subscriber)
    from_email = campaign.from_email or campaign.account.default_from_email
    sender = f"{campaign.from_name} <{from_email}>" if campaign.from_name else from_email
    # With sample values the token names subscriber 0: the header is there to be seen,
    # the public page refuses it.
    unsubscribe = links.unsubscribe_url(
        subscriber.pk if subscriber else 0, context["list"]["id"], campaign.pk
    )
    headers = {
        "X-Mailpanel-Test": "1",
        "X-Mailpanel-Campaign": str(campaign.uuid),
    }
    headers["List-Unsubscribe"] = f"<{unsubscribe}>"
    headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    messages = []
    for address in addresses[:MAX_ADDRESSES]:
        message = EmailMultiAlternatives(
            subject=f"[Test] {subject}",
            body=text,
            from_email=sender,
            to=[address],
            reply_to=[campaign.reply_to] if campaign.reply_to else None,
            headers=headers,
        )
        message.attach_alternative(html, "text/html")
        for attachment in campaign.attachments.all():
            with attachment.file.open("rb") as fh:
                message.attach(attachment.name, fh.read(), attachment.content_type)
        messages.append(message)
    with get_connection() as connection:
        sent = connection.send_messages(messages) or 0
    logger.info("test send of campaign %s to %s addresses", campaign.pk, sent)
    return sent
