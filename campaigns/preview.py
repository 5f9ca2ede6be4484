"""Previews, the web version and the spam-readiness checklist.

Previews merge the campaign as it would be frozen now, without saving anything,
with a chosen subscriber's values or sample ones; links are left as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone

from campaigns import designs, freezing, merge
from campaigns.models import Campaign, EmailTemplate
from lists.models import CustomField, Subscriber

GMAIL_CLIP_BYTES = 100 * 1024
SAMPLE_ADDRESS = "Your organisation · Street and number · Postcode City · Country"
_UNSUBSCRIBE_TAG = re.compile(r"\{\{\s*unsubscribe_url\s*\}\}")
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r"""\balt\s*=\s*(["'])\s*\S.*?\1""", re.IGNORECASE | re.DOTALL)


def sample_subscriber(account: object) -> dict:
    fields = {f.key: f"[{f.label}]" for f in CustomField.objects.filter(account=account)}
    return {"id": 0, "name": "Alex Example", "email": "alex@example.com", "fields": fields}


def subscriber_values(subscriber: Subscriber) -> dict:
    fields = subscriber.fields if isinstance(subscriber.fields, dict) else {}
    plain = {k: v for k, v in fields.items() if isinstance(v, str | int | float | bool)}
    return {
        "id": subscriber.pk,
        "name": subscriber.name,
        "email": subscriber.email,
        "fields": plain,
    }


def recipient(campaign: Campaign, subscriber: Subscriber | None) -> dict:
    first_list = campaign.lists.filter(owner=campaign.account).first()
    values = subscriber_values(subscriber) if subscriber else sample_subscriber(campaign.account)
    context = {
        "subscriber": values,
        "list": {
            "id": first_list.pk if first_list else 0,
            "name": first_list.name if first_list else "Your list",
        },
        "tracking_token": "",
    }
    if subscriber is None or first_list is None:
        context["unsubscribe_url"] = context["preferences_url"] = "#"
    return context


def neutral_recipient(campaign: Campaign) -> dict:
    """Values for the public web version: no one's data, links that go nowhere."""
    first_list = campaign.lists.first()
    return {
        "subscriber": {"id": 0, "name": "", "email": "", "fields": {}},
        # The list's id only chooses its postal address; no tag shows it.
        "list": {
            "id": first_list.pk if first_list else 0,
            "name": first_list.name if first_list else "",
        },
        "tracking_token": "",
        "unsubscribe_url": "#",
        "preferences_url": "#",
    }


def frozen_now(campaign: Campaign) -> merge.FrozenCampaign:
    """The campaign frozen in memory (nothing saved); raises merge.MergeError."""
    errors = freezing.check(campaign)
    if errors:
        raise merge.MergeError(errors)
    html, text, urls = freezing.render_frozen(campaign)
    stand_in = SimpleNamespace(
        pk=campaign.pk or 0,
        uuid=campaign.uuid,
        frozen_subject=campaign.subject,
        frozen_html=html,
        frozen_text=text,
        frozen_at=timezone.now(),
        from_name=campaign.from_name,
        from_email=campaign.from_email,
        reply_to=campaign.reply_to,
    )
    return merge.build_frozen(stand_in, urls, [], merge.postal_addresses(campaign))


def render(campaign: Campaign, subscriber: Subscriber | None = None) -> tuple[str, str, str]:
    """(subject, html, text) as the subscriber (or sample values) would get it."""
    frozen = merge.load_frozen(campaign) if campaign.is_frozen else frozen_now(campaign)
    return merge.merge(frozen, recipient(campaign, subscriber))


def web_version(campaign: Campaign) -> str:
    return merge.merge(merge.load_frozen(campaign), neutral_recipient(campaign))[1]


def _account_address(account: object) -> str:
    return merge.one_line(getattr(account, "postal_address", ""))


def template_preview(template: EmailTemplate) -> str:
    """A design template with sample content, merged with sample values."""
    sample = "<h1>Your headline</h1><p>The campaign body goes here.</p>"
    doc = designs.CONTENT.sub(lambda _m: sample, template.html, count=1)
    doc = designs.PREHEADER.sub("A short preheader", doc)
    context = {
        "subscriber": sample_subscriber(template.account),
        "list": {"name": "Your list"},
        "campaign": {"subject": "Your subject"},
        "sender": {"address": _account_address(template.account) or SAMPLE_ADDRESS},
        "unsubscribe_url": "#",
        "preferences_url": "#",
        "web_version_url": "#",
    }
    return merge.render_once(freezing.inline_css(doc), context)


@dataclass(frozen=True)
class CheckItem:
    label: str
    ok: bool
    detail: str = ""


def checklist(campaign: Campaign, subject: str, html: str) -> list[CheckItem]:
    """The spam-readiness checklist for a rendered campaign."""
    source = freezing.document(campaign)
    size = len(html.encode())
    images = [tag for tag in _IMG.findall(html) if "/t/o/" not in tag and 'width="1"' not in tag]
    missing_alt = [tag for tag in images if not _ALT.search(tag)]
    return [
        CheckItem("Subject line", bool(subject.strip()), "" if subject.strip() else "It is empty."),
        CheckItem(
            "Unsubscribe link",
            bool(_UNSUBSCRIBE_TAG.search(source)),
            "Add {{ unsubscribe_url }} to the body or template: bulk-mail rules require it.",
        ),
        CheckItem(
            "Size under 100 KB",
            size < GMAIL_CLIP_BYTES,
            f"{size // 1024} KB; Gmail clips messages over 102 KB.",
        ),
        CheckItem(
            "Images have alt text",
            not missing_alt,
            f"{len(missing_alt)} image(s) without alt text." if missing_alt else "",
        ),
        CheckItem(
            "Sender address",
            bool(campaign.from_email),
            "" if campaign.from_email else "Choose a sender address.",
        ),
        _dkim_item(campaign),
        _postal_address_item(campaign),
    ]


def _dkim_item(campaign: Campaign) -> CheckItem:
    """Asks the sending engine which verified domain would sign this sender's mail (an
    operator's or the account's own, the exact domain), so the checklist and the
    signatures agree."""
    from sending import domains

    domain = domains.domain_of(campaign.from_email)
    signed = bool(domain) and domains.signing_domain(campaign.from_email, campaign.account_id)
    detail = (
        ""
        if signed
        else f"{domain or 'The sender domain'} has no verified DKIM key: ask an operator "
        "to add and verify it, or receivers may file the mail as spam."
    )
    return CheckItem("Sender domain has DKIM set up", bool(signed), detail)


def _postal_address_item(campaign: Campaign) -> CheckItem:
    """Every list's recipients must get an address: the list's own or the account's."""
    addresses = merge.postal_addresses(campaign)
    list_ids = list(campaign.lists.values_list("id", flat=True)) if campaign.pk else []
    missing = [i for i in list_ids or [0] if not addresses.for_list(i)]
    detail = (
        ""
        if not missing
        else "Add your postal address on the account page (or the list's settings): "
        "bulk-mail rules require it in every campaign, as {{ sender.address }}."
    )
    return CheckItem("Postal address", not missing, detail)


def archive_token(account_id: int) -> str:
    from django.core.signing import Signer

    # "." separates: it is not in the signature's base64url alphabet, and is URL-safe.
    return Signer(salt="mailpanel.archive", sep=".").sign(str(account_id))


def archive_account_id(token: str) -> int | None:
    from django.core.signing import BadSignature, Signer

    try:
        return int(Signer(salt="mailpanel.archive", sep=".").unsign(token))
    except (BadSignature, ValueError):
        return None


def archive_url(account_id: int) -> str:
    from django.urls import reverse

    path = reverse("campaign_public:archive", args=[archive_token(account_id)])
    return settings.SITE_URL.rstrip("/") + path
