"""Returned messages for the intake tests, and a campaign that has sent to someone."""

from __future__ import annotations

from pathlib import Path
from string import Template

from campaigns.models import Campaign
from lists import subscriptions
from lists.models import MailingList, Subscriber
from sending import verp
from sending.models import Delivery, Relay
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory

MESSAGES = Path(__file__).parent / "messages" / "intake"
PLAIN_RETURN_PATH = "bounces@mailpanel.example"


def message(
    name: str, *, recipient: str, to: str = PLAIN_RETURN_PATH, message_id: str = ""
) -> bytes:
    text = (MESSAGES / name).read_bytes().decode("utf-8", "surrogateescape")
    filled = Template(text).safe_substitute(
        recipient=recipient, to=to, message_id=message_id or "<unrelated@elsewhere.example>"
    )
    return filled.encode("utf-8", "surrogateescape")


def raw_file(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def verp_address(delivery: Delivery) -> str:
    return verp.address(delivery.id, "bounce.mailpanel.example")


def message_id_of(delivery: Delivery) -> str:
    return f"<{delivery.campaign.uuid.hex}.{delivery.id}@mailpanel.example>"


def sent_to(
    owner: object,
    email: str,
    *,
    mailing_list: MailingList | None = None,
    campaign: Campaign | None = None,
    relay: Relay | None = None,
) -> Delivery:
    """A confirmed subscriber on a list of the owner, and a sent delivery of a campaign to them."""
    mailing_list = mailing_list or MailingListFactory(owner=owner)
    subscriber = Subscriber.objects.filter(account=owner, email=email).first()
    if subscriber is None:
        subscriber = SubscriptionFactory(
            mailing_list=mailing_list, subscriber__email=email
        ).subscriber
    elif not subscriber.subscriptions.filter(mailing_list=mailing_list).exists():
        SubscriptionFactory(mailing_list=mailing_list, subscriber=subscriber)
    subscriptions.recount([mailing_list.id])
    campaign = campaign or CampaignFactory(account=owner, lists=[mailing_list], status="sent")
    return Delivery.objects.create(
        campaign=campaign, subscriber=subscriber, relay=relay, status=Delivery.Status.SENT
    )
