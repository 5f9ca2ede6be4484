"""Opens and clicks that no person made: privacy proxies, image proxies, link scanners.

They are kept in the log with ``machine=True`` and the reason in ``details["machine"]``,
and counted apart from people's, because an Apple Mail inbox "opens" every message it
receives and a corporate gateway "clicks" every link before the recipient sees it.

Opens:
- Apple Mail Privacy Protection fetches images through Apple's proxies with the bare user
  agent ``Mozilla/5.0`` (no further tokens) from Apple's egress networks.
- Gmail (``GoogleImageProxy``), Yahoo (``YahooMailProxy``) and Outlook.com / Microsoft 365
  fetch images through proxies of their own.

Clicks:
- Link scanners with a telling user agent (Microsoft Safe Links' ``BingPreview``,
  Barracuda, Proofpoint, Mimecast...) or from the scanning networks below.
- A click within ``STATS_SCANNER_SECONDS`` (default 10) of the message being sent: no
  person reads and clicks that fast, a gateway does.
- Several links of one message clicked within the same second.

The networks are a small list of well-known prefixes, not the providers' complete
published lists (Apple publishes its egress ranges at mask-api.icloud.com; they change):
extend them with ``STATS_MACHINE_NETWORKS`` ("<name>=<cidr>" entries) when a provider
shows up as people in your numbers.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings

# name -> networks. Apple's own 17.0.0.0/8 and the Private Relay / MPP egress blocks it
# rents from Akamai and Cloudflare; Google's image proxy (ggpht) ranges; Microsoft's
# Exchange Online Protection outbound ranges (Safe Links and Outlook.com image fetches);
# the scanning networks of Proofpoint, Mimecast and Barracuda gateways.
NETWORKS: dict[str, tuple[str, ...]] = {
    "apple": ("17.0.0.0/8", "172.224.0.0/12", "104.28.0.0/16", "2a02:26f7::/32", "2620:149::/32"),
    "google": ("66.102.0.0/20", "66.249.80.0/20", "74.125.0.0/16", "2001:4860:4000::/36"),
    "yahoo": ("98.136.0.0/14", "66.163.160.0/19", "74.6.0.0/16"),
    "microsoft": (
        "40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "40.94.0.0/16",
        "2a01:111:f400::/48",
    ),
    "proofpoint": ("148.163.128.0/19", "67.231.144.0/20", "205.220.160.0/19"),
    "mimecast": ("205.139.110.0/24", "207.211.30.0/24", "185.58.84.0/22", "216.205.24.0/24"),
    "barracuda": ("64.235.144.0/20", "209.222.80.0/21"),
}  # fmt: skip
SCANNER_NETWORKS = {"microsoft", "proofpoint", "mimecast", "barracuda"}
OPEN_PROXY_AGENTS = {
    "GoogleImageProxy": "google_image_proxy",
    "YahooMailProxy": "yahoo_image_proxy",
    "ymailproxy": "yahoo_image_proxy",
    "OutlookImageProxy": "outlook_image_proxy",
    "Microsoft Office Existence Discovery": "microsoft_prefetch",
}
SCANNER_AGENTS = {
    "BingPreview": "safe_links",
    "Barracuda": "barracuda",
    "Proofpoint": "proofpoint",
    "Mimecast": "mimecast",
    "Safe Links": "safe_links",
    "SafeLinks": "safe_links",
    "Symantec": "symantec",
    "Trend Micro": "trend_micro",
    "python-requests": "script",
    "curl/": "script",
    "Go-http-client": "script",
}
APPLE_PROXY_AGENT = "Mozilla/5.0"


@cache
def _networks() -> dict[int, list[tuple[int, int, str]]]:
    """Per IP version: (first, last, name) as integers, so a lookup is integer compares."""
    entries = [(name, cidr) for name, cidrs in NETWORKS.items() for cidr in cidrs]
    for extra in getattr(settings, "STATS_MACHINE_NETWORKS", []):
        name, _, cidr = extra.partition("=")
        entries.append((name.strip(), cidr.strip()))
    ranges: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
    for name, cidr in entries:
        net = ipaddress.ip_network(cidr, strict=False)
        ranges[net.version].append((int(net.network_address), int(net.broadcast_address), name))
    return ranges


def network_of(ip: str) -> str:
    """The name of the provider network the address is in, or "" (also for a bad address)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    number = int(address)
    for first, last, name in _networks()[address.version]:
        if first <= number <= last:
            return name
    return ""


def _agent_match(agent: str, table: dict[str, str]) -> str:
    for token, reason in table.items():
        if token in agent:
            return reason
    return ""


def open_reason(agent: str, network: str) -> str:
    """Why an open was made by a machine, or "" for a person."""
    if agent.strip() == APPLE_PROXY_AGENT and network == "apple":
        return "apple_privacy_protection"
    reason = _agent_match(agent, OPEN_PROXY_AGENTS)
    if reason:
        return reason
    if network == "microsoft":
        return "microsoft_proxy"
    return ""


def click_reason(agent: str, network: str) -> str:
    """Why a click was made by a scanner (from who made it), or "" for a person."""
    reason = _agent_match(agent, SCANNER_AGENTS)
    if reason:
        return reason
    if network in SCANNER_NETWORKS:
        return f"{network}_network"
    return ""


def agent_family(agent: str) -> str:
    """A short label for the user agent, kept instead of the whole string."""
    if not agent:
        return ""
    if agent.strip() == APPLE_PROXY_AGENT:
        return "bare_mozilla"
    known = _agent_match(agent, OPEN_PROXY_AGENTS) or _agent_match(agent, SCANNER_AGENTS)
    if known:
        return known
    for token, family in (
        ("iPhone", "ios"), ("iPad", "ios"), ("Android", "android"), ("Thunderbird", "thunderbird"),
        ("Outlook", "outlook"), ("Edg/", "edge"), ("Firefox/", "firefox"), ("Chrome/", "chrome"),
        ("Safari/", "safari"), ("AppleWebKit", "apple_mail"),
    ):  # fmt: skip
        if token in agent:
            return family
    return "other"
