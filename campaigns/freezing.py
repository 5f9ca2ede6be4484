"""Freezing: turning a campaign into the form the sending engine reads.

Everything that is the same for every recipient happens here, once: the design
template and body become one document, CSS is inlined, tracked links are numbered
and stored, the text part is made, attachments are encoded as MIME parts, and the
merge templates are compiled to prove they merge.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import html
import logging
import re
from email.utils import encode_rfc2231

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from premailer import Premailer

from campaigns import content, designs, merge
from campaigns.models import Attachment, Campaign, Link
from campaigns.plaintext import html_to_text

logger = logging.getLogger(__name__)

_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
# cssutils (under premailer) fetches @import URLs whatever allow_network says.
_CSS_IMPORT = re.compile(r"@import\b[^;]*;?", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
OPEN_PIXEL = (
    '<img src="{{ tracking.open }}" width="1" height="1" alt="" '
    'style="display:block;border:0;width:1px;height:1px">'
)
# What number_links writes in place of a tracked href.
_TRACKED_HREF = re.compile(r"\{\{ tracking\.l(\d+) \}\}")


def document(campaign: Campaign) -> str:
    """The design template with the body and preheader in it (not yet inlined)."""
    layout = campaign.template.html if campaign.template else designs.starting_html("plain")
    body = content.body_html(campaign.body, campaign.body_format)
    if designs.CONTENT.search(layout):
        doc = designs.CONTENT.sub(lambda _m: body, layout, count=1)
    else:
        doc = layout + body
    preheader = html.escape(campaign.preheader)
    return designs.PREHEADER.sub(lambda _m: preheader, doc)


def inline_css(doc: str) -> str:
    """The document with its <style> rules inlined; never fetches anything."""
    if "<style" not in doc.lower():
        return doc
    shielded, restore = content.protect(doc)
    shielded = _STYLE_BLOCK.sub(
        lambda m: m.group(1) + _CSS_IMPORT.sub("", m.group(2)) + m.group(3), shielded
    )
    inliner = Premailer(
        shielded,
        allow_network=False,
        allow_loading_external_files=False,
        external_styles=None,
        disable_link_rewrites=True,
        disable_validation=True,
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,
        cssutils_logging_level=logging.CRITICAL,
        exclude_pseudoclasses=True,
    )
    return restore(inliner.transform())


def _trackable(url: str) -> bool:
    return url.lower().startswith(("http://", "https://")) and "{" not in url


def number_links(doc: str) -> tuple[str, list[str]]:
    """Tracked hrefs replaced by ``{{ tracking.l<N> }}``; the URLs in index order (from 1).

    The same URL used twice is one link. Merge-tag URLs and mailto: are left alone.
    """
    urls: list[str] = []
    index_of: dict[str, int] = {}

    def replace_href(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3)).strip()
        if not _trackable(url):
            return match.group(0)
        if url not in index_of:
            urls.append(url)
            index_of[url] = len(urls)
        return (
            f"{match.group(1)}{match.group(2)}{{{{ tracking.l{index_of[url]} }}}}{match.group(2)}"
        )

    def replace_anchor(match: re.Match[str]) -> str:
        return _HREF.sub(replace_href, match.group(0), count=1)

    return _ANCHOR.sub(replace_anchor, doc), urls


def add_open_pixel(doc: str) -> str:
    if _BODY_END.search(doc):
        return _BODY_END.sub(lambda m: OPEN_PIXEL + m.group(0), doc, count=1)
    return doc + OPEN_PIXEL


def _safe_filename(name: str) -> str:
    return re.sub(r'[\r\n"\\]', "_", name) or "attachment"


def encode_attachment(data: bytes, name: str, content_type: str) -> bytes:
    """The whole MIME part: headers, a blank line, base64 in 76-character CRLF lines."""
    name = _safe_filename(name)
    if name.isascii():
        params = f'name="{name}"', f'filename="{name}"'
    else:
        encoded = encode_rfc2231(name, "utf-8")
        params = f"name*={encoded}", f"filename*={encoded}"
    content_type = re.sub(r"[^\w.+/-]", "", content_type) or "application/octet-stream"
    head = (
        f"Content-Type: {content_type}; {params[0]}\r\n"
        f"Content-Disposition: attachment; {params[1]}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    # b64encode in one C call, then 76-character lines (encodebytes loops in Python).
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return head + b"\r\n".join(lines) + b"\r\n"


def check(campaign: Campaign) -> list[str]:
    """Merge problems of the subject, body, template and text part, each with its line."""
    errors = merge.check(campaign.subject, where="Subject")
    errors += merge.check(content.body_html(campaign.body, campaign.body_format), where="Body")
    if campaign.template:
        errors += designs.check_layout(campaign.template.html)
    if campaign.text_edited:
        errors += merge.check(campaign.text_body, where="Text part")
    return errors


def render_frozen(campaign: Campaign) -> tuple[str, str, list[str]]:
    """(html, text, tracked urls) of a campaign as it would be frozen now."""
    doc = inline_css(document(campaign))
    text = campaign.text_body if campaign.text_edited else html_to_text(doc)
    urls: list[str] = []
    track_opens, track_clicks = tracking(campaign)
    if track_clicks:
        doc, urls = number_links(doc)
    if track_opens:
        doc = add_open_pixel(doc)
    return doc, text, urls


def tracking(campaign: Campaign) -> tuple[bool, bool]:
    """(track opens, track clicks) of the frozen document: the campaign's switches, and
    off when every one of its lists has that kind of tracking off.

    With some lists on and some off, the document keeps its tracking and the sending
    engine leaves it out per recipient (see :func:`untracked_variant`): a subscriber on
    any target list whose owner turned tracking off is not tracked.
    """
    opens, clicks = campaign.track_opens, campaign.track_clicks
    if not (opens or clicks) or campaign.pk is None:
        return opens, clicks
    lists = campaign.lists.aggregate(
        total=Count("id"),
        opens=Count("id", filter=Q(track_opens=True)),
        clicks=Count("id", filter=Q(track_clicks=True)),
    )
    if not lists["total"]:
        return opens, clicks
    return opens and lists["opens"] > 0, clicks and lists["clicks"] > 0


def without_tracking(doc: str, links: list[str], *, opens: bool, clicks: bool) -> str:
    """A frozen document without its open pixel (``opens``) and with its tracked links
    back as written (``clicks``), as the merge writes them for an empty token."""
    if opens:
        doc = doc.replace(OPEN_PIXEL, "")
    if clicks:
        doc = _TRACKED_HREF.sub(lambda m: html.escape(links[int(m.group(1)) - 1]), doc)
    return doc


def untracked_variant(
    campaign: Campaign, frozen: merge.FrozenCampaign, *, opens: bool, clicks: bool
) -> merge.FrozenCampaign:
    """The loaded frozen campaign for recipients whose opens and/or clicks are not
    tracked: compiled once, then each of them costs what any recipient does."""
    variant = copy.copy(campaign)
    variant.frozen_html = without_tracking(
        campaign.frozen_html, frozen.links, opens=opens, clicks=clicks
    )
    built = merge.build_frozen(variant, frozen.links, frozen.attachments)
    return dataclasses.replace(built, senders=frozen.senders, default_sender=frozen.default_sender)


def freeze(campaign: Campaign) -> None:
    """Writes the frozen form of the campaign. Raises merge.MergeError if it cannot merge,
    or if its sender address may not be used (sending.domains.sender_errors)."""
    from sending import domains

    errors = check(campaign) + domains.sender_errors(campaign.from_email, campaign.account_id)
    if errors:
        raise merge.MergeError(errors)
    frozen_html, frozen_text, urls = render_frozen(campaign)
    # Compiling proves the frozen document merges (the engine adds tracking.* itself).
    merge.compile_template(frozen_html)
    merge.compile_template(frozen_text, autoescape=False, where="Text part")
    attachments = list(campaign.attachments.all())
    for attachment in attachments:
        with attachment.file.open("rb") as fh:
            data = fh.read()
        attachment.encoded_part = encode_attachment(data, attachment.name, attachment.content_type)
    with transaction.atomic():
        Link.objects.filter(campaign=campaign).delete()
        Link.objects.bulk_create(
            Link(campaign=campaign, index=i, url=url) for i, url in enumerate(urls, start=1)
        )
        for attachment in attachments:
            Attachment.objects.filter(pk=attachment.pk).update(encoded_part=attachment.encoded_part)
        campaign.frozen_subject = campaign.subject
        campaign.frozen_html = frozen_html
        campaign.frozen_text = frozen_text
        campaign.frozen_at = timezone.now()
        Campaign.objects.filter(pk=campaign.pk).update(
            frozen_subject=campaign.frozen_subject,
            frozen_html=frozen_html,
            frozen_text=frozen_text,
            frozen_at=campaign.frozen_at,
        )
    logger.info(
        "froze campaign %s: %s links, %s attachments", campaign.pk, len(urls), len(attachments)
    )


def unfreeze(campaign: Campaign) -> None:
    """Drops the frozen form of a draft that is being edited again."""
    with transaction.atomic():
        Link.objects.filter(campaign=campaign).delete()
        Attachment.objects.filter(campaign=campaign).update(encoded_part=None)
        campaign.frozen_subject = campaign.frozen_html = campaign.frozen_text = ""
        campaign.frozen_at = None
        Campaign.objects.filter(pk=campaign.pk).update(
            frozen_subject="", frozen_html="", frozen_text="", frozen_at=None
        )
