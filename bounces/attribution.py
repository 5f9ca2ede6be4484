"""Which delivery, campaign, subscriber and account a returned message is about.

Order of trust: the signed VERP token (envelope recipient or returned headers), then the
deterministic Message-ID that sending gives every message, then the failed address itself
matched against subscribers. The first two are ours and cannot name another account's
delivery; the address is a guess, so it is narrowed to the campaign when one is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q

from lists import addresses
from lists.models import Subscriber
from sending import verp
from sending.models import Delivery

# sending/message.py: <{campaign.uuid.hex}.{delivery id}@{domain}>
MESSAGE_ID_RE = re.compile(r"^<?([0-9a-f]{32})\.(\d+)@", re.IGNORECASE)


@dataclass
class Attribution:
    delivery: Delivery | None = None
    campaign_id: int | None = None
    account_id: int | None = None
    subscriber: Subscriber | None = None
    relay_id: int | None = None
    via: str = ""  # verp / message-id / address: shown to operators when a guess looks wrong

    @classmethod
    def of_delivery(cls, delivery: Delivery, via: str) -> Attribution:
        return cls(
            delivery=delivery,
            campaign_id=delivery.campaign_id,
            account_id=delivery.campaign.account_id,
            subscriber=delivery.subscriber,
            relay_id=delivery.relay_id,
            via=via,
        )


def _deliveries() -> object:
    return Delivery.objects.select_related("campaign", "subscriber")


def delivery_from_verp(envelope_recipient: str | None, verp_token: str = "") -> Delivery | None:
    """The delivery named by a VERP address, or by a token the parser found in the headers."""
    candidates = [envelope_recipient or ""]
    if verp_token:
        candidates.append(f"bounces+{verp_token}@returned")
    for candidate in candidates:
        delivery_id = verp.delivery_id_from(candidate) if candidate else None
        if delivery_id is not None:
            return _deliveries().filter(id=delivery_id).first()
    return None


def delivery_from_message_id(message_id: str) -> Delivery | None:
    """The delivery whose deterministic Message-ID this is; the campaign's UUID must match."""
    match = MESSAGE_ID_RE.match((message_id or "").strip())
    if not match:
        return None
    campaign_hex, delivery_id = match.group(1).lower(), int(match.group(2))
    delivery = _deliveries().filter(id=delivery_id).first()
    if delivery is None or delivery.campaign.uuid.hex != campaign_hex:
        return None
    return delivery


def by_address(address: str, *, campaign_id: int | None = None) -> Attribution:
    """A guess from the failed address alone.

    Within a known campaign, only its deliveries count. Otherwise, an address that is a
    subscriber of one account belongs to it; one known to several accounts goes to the
    account that mailed it last.
    """
    try:
        email = addresses.normalise(address)
    except addresses.InvalidAddress:
        return Attribution()
    to_address = Q(subscriber__email__iexact=email)
    if campaign_id is not None:
        delivery = _deliveries().filter(to_address, campaign_id=campaign_id).first()
        return Attribution.of_delivery(delivery, "address") if delivery else Attribution()
    subscribers = list(Subscriber.objects.filter(email__iexact=email)[:50])
    if len(subscribers) == 1:
        return Attribution(
            subscriber=subscribers[0], account_id=subscribers[0].account_id, via="address"
        )
    if not subscribers:
        return Attribution()
    latest = _deliveries().filter(to_address).order_by("-created_at", "-id").first()
    return Attribution.of_delivery(latest, "address") if latest else Attribution()


def attribute(
    recipient: str,
    *,
    envelope_recipient: str | None = None,
    verp_token: str = "",
    message_id: str = "",
    only_recipient: bool = True,
) -> Attribution:
    """Attributes one failed recipient of a returned message.

    ``only_recipient`` says the message reports this one address: then the delivery named by
    VERP or Message-ID is taken even when the reported address differs (forwarding, aliases).
    With several failed addresses, a named delivery only narrows the search to its campaign.
    """
    for delivery, via in (
        (delivery_from_verp(envelope_recipient, verp_token), "verp"),
        (delivery_from_message_id(message_id), "message-id"),
    ):
        if delivery is None:
            continue
        if only_recipient or not recipient or _same_address(delivery.subscriber.email, recipient):
            return Attribution.of_delivery(delivery, via)
        return by_address(recipient, campaign_id=delivery.campaign_id)
    message = verp.message_from(envelope_recipient or "")
    if message is not None and message.account_id:
        # A transactional mail (confirmation, welcome, test send) names its account only.
        return in_account(recipient, message.account_id)
    return by_address(recipient) if recipient else Attribution()


def in_account(address: str, account_id: int) -> Attribution:
    """The account's subscriber with that address, or the account alone."""
    try:
        email = addresses.normalise(address)
    except addresses.InvalidAddress:
        return Attribution(account_id=account_id, via="verp")
    subscriber = Subscriber.objects.filter(account_id=account_id, email__iexact=email).first()
    return Attribution(subscriber=subscriber, account_id=account_id, via="verp")


def _same_address(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()
