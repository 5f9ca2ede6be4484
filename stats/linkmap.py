"""The campaign's mail with each tracked link annotated with its clicks (the click map).

The frozen document marks every tracked link as ``href="{{ tracking.l<N> }}"``
(campaigns.freezing.number_links). A badge with the link's human clicks goes right
after each such anchor's opening tag, and the document is then merged like the web
version (no one's data, links as written). The owner's HTML stays untrusted: the view
serves the result through campaigns.sandbox, in an iframe without scripts or origin.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from campaigns import merge, preview
from campaigns.models import Campaign
from stats.dashboards import LinkRow

_TRACKED_ANCHOR = re.compile(
    r"""<a\b[^>]*\bhref\s*=\s*(["'])\{\{\s*tracking\.l(\d+)\s*\}\}\1[^>]*>""", re.IGNORECASE
)
BADGE_STYLE = (
    "display:inline-block;margin:0 4px;padding:1px 6px;border-radius:9px;"
    "background:#b42318;color:#fff;font:bold 11px/1.4 sans-serif;text-decoration:none"
)


def _badge(row: LinkRow | None, index: int) -> str:
    clicks = row.total_human_clicks if row else 0
    share = f" · {row.share:.0%}" if row and row.share else ""
    label = "click" if clicks == 1 else "clicks"
    # Only digits and fixed words go in: nothing the owner or a subscriber wrote.
    return (
        f'<span style="{BADGE_STYLE}" title="Link {index}">#{index}: {clicks} {label}{share}</span>'
    )


def annotate(frozen_html: str, rows: list[LinkRow]) -> str:
    """The frozen template source with a click badge after each tracked anchor's tag."""
    by_index = {row.index: row for row in rows}

    def add_badge(match: re.Match[str]) -> str:
        index = int(match.group(2))
        return match.group(0) + _badge(by_index.get(index), index)

    return _TRACKED_ANCHOR.sub(add_badge, frozen_html)


def render(campaign: Campaign, rows: list[LinkRow]) -> str:
    """The annotated mail as a whole HTML document; raises merge.MergeError."""
    if not campaign.is_frozen:
        return "<p>This campaign has not been frozen yet: there is nothing to annotate.</p>"
    links = [row.url for row in sorted(rows, key=lambda r: r.index)]
    stand_in = SimpleNamespace(
        pk=campaign.pk,
        uuid=campaign.uuid,
        frozen_subject=campaign.frozen_subject,
        frozen_html=annotate(campaign.frozen_html, rows),
        frozen_text=campaign.frozen_text,
        frozen_at=campaign.frozen_at,
        from_name=campaign.from_name,
        from_email=campaign.from_email,
        reply_to=campaign.reply_to,
    )
    frozen = merge.build_frozen(stand_in, links, [])
    return merge.merge(frozen, preview.neutral_recipient(campaign))[1]
