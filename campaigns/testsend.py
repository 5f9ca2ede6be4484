"""Test sends: the campaign as a real send would build it (the frozen form, the merge,
the message builder, DKIM, the account's relays), to up to ten addresses.

A test is marked as one (``X-Mailpanel-Test: yes``, "[Test]" in the subject), is never
counted (no Delivery row, no event, links left as written) and its links that act on
a subscriber name subscriber 0, which the public pages refuse: an owner's click on a
test's unsubscribe link must not unsubscribe the subscriber whose values it shows.
"""

from __future__ import annotations

import logging

from django.conf import settings

from campaigns import audience, freezing, merge, preview
from campaigns.models import Campaign
from sending import backend, domains, message, smtp, verp

logger = logging.getLogger(__name__)
MAX_ADDRESSES = 10
NOBODY = 0


def frozen_for_test(campaign: Campaign) -> merge.FrozenCampaign:
    """The frozen campaign, or for a draft the campaign frozen in memory (nothing saved).

    Raises merge.MergeError when it does not merge.
    """
    if campaign.is_frozen:
        return merge.load_frozen(campaign)
    frozen = preview.frozen_now(campaign)
    parts = []
    for attachment in campaign.attachments.order_by("created_at", "id"):
        with attachment.file.open("rb") as fh:
            data = fh.read()
        parts.append(freezing.encode_attachment(data, attachment.name, attachment.content_type))
    frozen.attachments = parts
    return frozen


def _factory(
    campaign: Campaign, frozen: merge.FrozenCampaign, from_email: str
) -> message.MessageFactory:
    signing = domains.signing_domain(from_email, campaign.account_id)
    bounce_domain = settings.BOUNCE_DOMAIN or domains.domain_of(from_email)
    return message.MessageFactory(
        campaign_id=campaign.pk, campaign_uuid=campaign.uuid.hex,
        account_id=campaign.account_id, from_name=campaign.from_name, from_email=from_email,
        reply_to=campaign.reply_to, attachments=frozen.attachments,
        signing_keys=domains.signing_keys(signing) if signing else [],
        unsubscribe_mailto=f"unsubscribe@{bounce_domain}", test=True,
    )  # fmt: skip


def _list_id_header(campaign: Campaign) -> str:
    first = campaign.lists.filter(owner=campaign.account).order_by("id").first()
    if first is None:
        return message.list_id_header(campaign.name, campaign.uuid.hex)
    return message.list_id_header(first.name, first.uuid.hex)


def build(campaign: Campaign, addresses: list[str]) -> list[smtp.Item]:
    """(address, envelope sender, address, message bytes) for each test address."""
    subscriber = audience.recipients(campaign).order_by("id").first()
    frozen = frozen_for_test(campaign)
    context = preview.recipient(campaign, subscriber)
    unsubscribe_url = frozen.urls.unsubscribe_url(NOBODY, context["list"]["id"])
    context["unsubscribe_url"] = unsubscribe_url
    context["preferences_url"] = frozen.urls.preferences_url(NOBODY)
    context["tracking_token"] = ""  # links as written: nothing is counted
    subject, html, text = merge.merge(frozen, context)
    from_email = campaign.from_email or campaign.account.default_from_email
    factory = _factory(campaign, frozen, from_email)
    bounce_domain = settings.BOUNCE_DOMAIN or domains.domain_of(from_email)
    list_header = _list_id_header(campaign)
    items: list[smtp.Item] = []
    for address in addresses[:MAX_ADDRESSES]:
        ref = verp.message_ref("test", campaign.uuid.hex, address, subject, html, text)
        recipient = message.Recipient(
            delivery_id=NOBODY, email=address, name="", subject=f"[Test] {subject}",
            html=html, text=text, unsubscribe_url=unsubscribe_url, list_id_header=list_header,
            message_id=verp.message_id(ref, factory.domain),
        )  # fmt: skip
        sender = verp.message_address(campaign.account_id, ref, bounce_domain)
        items.append((address, sender, address, factory.build(recipient)))
    return items


def send_test(campaign: Campaign, addresses: list[str]) -> int:
    """Mails the test; returns how many addresses the relay accepted it for.

    Raises merge.MergeError if the campaign does not merge.
    """
    sent = backend.send_prepared(campaign.account_id, build(campaign, addresses))
    logger.info("test send of campaign %s to %s addresses", campaign.pk, sent)
    return sent
