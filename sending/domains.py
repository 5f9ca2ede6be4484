"""Sending domains: DKIM keys, the DNS records to publish, and checking them.

DNS is the outside world: every lookup has a short timeout and a failed lookup is
reported as "could not check", never as a crash.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from lists import addresses
from mailpanel.lib import encryption
from sending import dkim
from sending.models import Relay, SendingDomain

DNS_TIMEOUT_SECONDS = 3.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class DnsRecord:
    name: str
    type: str
    value: str


@dataclass
class CheckItem:
    name: str
    # None: neither confirmed nor refuted (a lookup failed, or what is published cannot
    # be checked from here): shown as a warning, never as a pass.
    ok: bool | None
    detail: str


def create(
    domain: str, *, account: object | None, selector: str = "mailpanel", ed25519: bool = False
) -> SendingDomain:
    """Creates a sending domain with a new RSA-2048 key (and an Ed25519 one if asked).

    Raises addresses.InvalidAddress if the domain is not a domain name.
    """
    name = addresses.normalise_domain(domain)
    row = SendingDomain(
        account=account,
        domain=name,
        selector=selector,
        private_key_encrypted=encryption.encrypt(dkim.generate_private_key(dkim.RSA_SHA256)),
    )
    if ed25519:
        row.ed25519_selector = f"{selector}-ed"
        row.ed25519_key_encrypted = encryption.encrypt(
            dkim.generate_private_key(dkim.ED25519_SHA256)
        )
    with transaction.atomic():
        row.save()
    return row


def signing_keys(domain: SendingDomain) -> list[dkim.SigningKey]:
    keys = [dkim.SigningKey.from_pem(domain.domain, domain.selector, domain.private_key_pem())]
    if domain.ed25519_key_encrypted:
        keys.append(
            dkim.SigningKey.from_pem(
                domain.domain, domain.ed25519_selector, domain.ed25519_key_pem()
            )
        )
    return keys


def relays_for(domain: SendingDomain) -> list[Relay]:
    """The enabled relays mail from this domain may leave through: those of the domain's
    account (its dedicated relays, else the shared pool); for an operators' domain,
    which every account may send from, all of them."""
    enabled = Relay.objects.filter(enabled=True)
    if domain.account_id is not None:
        enabled = enabled.for_account(domain.account_id)
    return list(enabled.distinct())


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _spf_mechanism(relay: Relay) -> str | None:
    """What the domain's SPF record needs for this relay, when that is known without DNS:
    the relay's configured include, or its host when the host is an IP address."""
    if relay.spf_include.strip():
        return relay.spf_include.strip()
    address = _ip(relay.host)
    return f"ip{address.version}:{address}" if address else None


def records(domain: SendingDomain) -> list[DnsRecord]:
    """The TXT records the domain's owner publishes, ready to copy."""
    found = [
        DnsRecord(
            f"{domain.selector}._domainkey.{domain.domain}",
            "TXT",
            dkim.dns_record(domain.private_key_pem()),
        )
    ]
    if domain.ed25519_key_encrypted:
        found.append(
            DnsRecord(
                f"{domain.ed25519_selector}._domainkey.{domain.domain}",
                "TXT",
                dkim.dns_record(domain.ed25519_key_pem()),
            )
        )
    mechanisms = sorted({m for r in relays_for(domain) if (m := _spf_mechanism(r))})
    found.append(DnsRecord(domain.domain, "TXT", " ".join(["v=spf1", *mechanisms, "~all"])))
    found.append(DnsRecord(f"_dmarc.{domain.domain}", "TXT", "v=DMARC1; p=none; adkim=r; aspf=r"))
    return found


def _txt(resolver: dns.resolver.Resolver, name: str) -> list[str] | None:
    """TXT strings at name ([] when none exist), or None when DNS itself failed."""
    try:
        answer = resolver.resolve(name, "TXT", lifetime=DNS_TIMEOUT_SECONDS)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError):
        return None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def _check_dkim(resolver: dns.resolver.Resolver, name: str, expected: str) -> CheckItem:
    found = _txt(resolver, name)
    if found is None:
        return CheckItem(f"DKIM {name}", None, "the DNS lookup failed; try again later")
    want = expected.split("p=", 1)[1]
    if any(want == txt.replace(" ", "").split("p=", 1)[-1] for txt in found):
        return CheckItem(f"DKIM {name}", True, "the public key matches")
    if found:
        return CheckItem(f"DKIM {name}", False, "a record exists but holds another key")
    return CheckItem(f"DKIM {name}", False, "no TXT record yet")


def check_dns(
    domain: SendingDomain, resolver: dns.resolver.Resolver | None = None
) -> list[CheckItem]:
    """Looks up DKIM, SPF and DMARC; stores the result and marks the domain verified
    when DKIM is in place (SPF and DMARC are advice, shown but not required)."""
    resolver = resolver or dns.resolver.Resolver()
    wanted = records(domain)
    items = [_check_dkim(resolver, r.name, r.value) for r in wanted if "_domainkey" in r.name]

    items.append(_check_spf(resolver, domain.domain, relays_for(domain)))

    dmarc = _txt(resolver, f"_dmarc.{domain.domain}")
    if dmarc is None:
        items.append(CheckItem("DMARC", None, "the DNS lookup failed"))
    else:
        ok = any(t.upper().startswith("V=DMARC1") for t in dmarc)
        items.append(CheckItem("DMARC", ok, "in place" if ok else "no v=DMARC1 record"))

    SendingDomain.objects.filter(id=domain.id).update(
        last_check={"items": [asdict(i) for i in items]},
        last_checked_at=timezone.now(),
        verified_at=_verified_at(domain, [i for i in items if i.name.startswith("DKIM")]),
    )
    domain.refresh_from_db()
    return items


def _resolve(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> list | None:
    """The answer's records ([] when there are none), or None when DNS itself failed."""
    try:
        return list(resolver.resolve(name, rdtype, lifetime=DNS_TIMEOUT_SECONDS))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError):
        return None


def _addresses(resolver: dns.resolver.Resolver, host: str) -> list[IPAddress] | None:
    """The host's IPv4 and IPv6 addresses, or None when a lookup failed."""
    literal = _ip(host)
    if literal is not None:
        return [literal]
    found: list[IPAddress] = []
    for rdtype in ("A", "AAAA"):
        answer = _resolve(resolver, host, rdtype)
        if answer is None:
            return None
        found += [ipaddress.ip_address(r.address) for r in answer]
    return found


def _check_spf(resolver: dns.resolver.Resolver, domain: str, relays: list[Relay]) -> CheckItem:
    """Whether the domain's SPF record authorises every relay its mail may leave through:
    a relay's configured include must be in the record; a relay without one must have
    its addresses covered by the record's ip4, ip6, a or mx mechanisms. What only the
    record's include, exists, ptr or redirect could authorise is "cannot verify"."""
    found = _txt(resolver, domain)
    if found is None:
        return CheckItem("SPF", None, "the DNS lookup failed")
    spf = [t for t in found if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if not spf:
        return CheckItem("SPF", False, "no v=spf1 record")
    if len(spf) > 1:
        # RFC 7208 4.5: receivers then treat SPF as broken (permerror).
        return CheckItem("SPF", False, "more than one v=spf1 record: merge them into one")
    if not relays:
        return CheckItem("SPF", None, "cannot verify: no enabled relay sends this domain's mail")
    terms = [t.lower() for t in spf[0].split()[1:]]
    verdicts = [_relay_verdict(resolver, domain, terms, relay) for relay in relays]
    for wanted in (False, None):
        details = [detail for ok, detail in verdicts if ok is wanted]
        if details:
            return CheckItem("SPF", wanted, "; ".join(details))
    return CheckItem("SPF", True, "in place for " + ", ".join(r.name for r in relays))


def _relay_verdict(
    resolver: dns.resolver.Resolver, domain: str, terms: list[str], relay: Relay
) -> tuple[bool | None, str]:
    """(True, "") when the record authorises the relay, else (False or None, why)."""
    include = relay.spf_include.strip().lower()
    networks = _networks_of(include)
    if include and networks is None:
        if include in [t.lstrip("+") for t in terms]:
            return True, ""
        return False, f"missing {relay.spf_include.strip()} (relay {relay.name})"
    if networks is None:
        addresses = _addresses(resolver, relay.host)
        if addresses is None:
            return None, f"the DNS lookup of relay {relay.name}'s host {relay.host} failed"
        if not addresses:
            return None, (
                f"cannot verify: relay {relay.name} has no SPF include configured and its "
                f"host {relay.host} has no address"
            )
        networks = [ipaddress.ip_network(a) for a in addresses]
    results = {_shown(n): _spf_result(resolver, domain, terms, n) for n in networks}
    if all(r == PASS for r in results.values()):
        return True, ""
    refused = [n for n, r in results.items() if r == FAIL]
    if refused:
        return False, f"relay {relay.name}'s address {', '.join(refused)} is not authorised"
    unsure = ", ".join(n for n, r in results.items() if r == UNKNOWN)
    if include:
        why = f"relay {relay.name}'s {include} is not in the record"
    else:
        why = f"relay {relay.name} has no SPF include configured"
    return None, (
        f"cannot verify: {why}, and its address {unsure} is not listed directly (ip4, ip6, a, mx); "
        "only the record's include, exists or redirect could authorise it"
    )


def _networks_of(include: str) -> list[IPNetwork] | None:
    """The addresses an ip4: or ip6: include names; None for any other include."""
    if not include.startswith(("ip4:", "ip6:")):
        return None
    try:
        return [ipaddress.ip_network(include[4:], strict=False)]
    except ValueError:
        return None


def _shown(network: IPNetwork) -> str:
    whole = network.prefixlen == network.max_prefixlen
    return str(network.network_address) if whole else str(network)


PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
# a, a:host, a/24, a:host/24//64 and the same for mx (RFC 7208 5.3, 5.4)
_HOST_MECHANISM = re.compile(r"^(a|mx)(?::([^/]+))?(?:/(\d{1,2}))?(?://(\d{1,3}))?$")


def _spf_result(
    resolver: dns.resolver.Resolver, domain: str, terms: list[str], network: IPNetwork
) -> str:
    """What the record says of mail from ``network``, as far as its ip4, ip6, a, mx and
    all mechanisms tell (RFC 7208 4.6: the first mechanism that matches decides). Other
    mechanisms are not followed here; when one of them could change the answer, the
    answer is UNKNOWN."""
    # An unfollowed mechanism that could pass makes a later "not authorised" unsure; one
    # that could refuse (-, ~, ?) makes a later pass unsure.
    pass_unsure = fail_unsure = redirect = False
    for term in terms:
        qualifier = term[0] if term[0] in "+-~?" else "+"
        mechanism = term.lstrip("+-~?")
        if "=" in mechanism.partition(":")[0]:
            # A modifier: only redirect= can decide, and only when nothing matched.
            redirect = redirect or mechanism.startswith("redirect=")
            continue
        matched = _matches(resolver, domain, mechanism, network)
        if matched is None:
            if qualifier == "+":
                fail_unsure = True
            else:
                pass_unsure = True
        elif matched:
            if qualifier == "+":
                return UNKNOWN if pass_unsure else PASS
            return UNKNOWN if fail_unsure else FAIL
    return UNKNOWN if fail_unsure or redirect else FAIL


def _matches(
    resolver: dns.resolver.Resolver, domain: str, mechanism: str, network: IPNetwork
) -> bool | None:
    """Whether the mechanism covers the network; None when that is not known here."""
    if mechanism == "all":
        return True
    if mechanism.startswith(("ip4:", "ip6:")):
        try:
            listed = ipaddress.ip_network(mechanism[4:], strict=False)
        except ValueError:
            return None
        return listed.version == network.version and network.subnet_of(listed)  # type: ignore[arg-type]
    found = _HOST_MECHANISM.match(mechanism)
    if found is None:
        return None
    kind, host, prefix4, prefix6 = found.groups()
    addresses = (_addresses if kind == "a" else _mx_addresses)(resolver, host or domain)
    if addresses is None:
        return None
    prefix = {4: prefix4 or "32", 6: prefix6 or "128"}
    return any(
        address.version == network.version
        and network.subnet_of(  # type: ignore[arg-type]
            ipaddress.ip_network(f"{address}/{prefix[address.version]}", strict=False)
        )
        for address in addresses
    )


def _mx_addresses(resolver: dns.resolver.Resolver, domain: str) -> list[IPAddress] | None:
    """The addresses of the domain's mail exchangers, or None when a lookup failed."""
    exchanges = _resolve(resolver, domain, "MX")
    if exchanges is None:
        return None
    found: list[IPAddress] = []
    # RFC 7208 4.6.4: at most ten exchanges are looked up.
    for exchange in exchanges[:10]:
        addresses = _addresses(resolver, str(exchange.exchange).rstrip("."))
        if addresses is None:
            return None
        found += addresses
    return found


def _verified_at(domain: SendingDomain, dkim_items: list[CheckItem]) -> object:
    if all(item.ok for item in dkim_items):
        return domain.verified_at or timezone.now()
    if any(item.ok is None for item in dkim_items) and not any(
        item.ok is False for item in dkim_items
    ):
        # The lookup failed, which says nothing about the record: a DNS timeout must
        # not stop the campaigns of a domain that was verified.
        return domain.verified_at
    return None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower()


def signing_domain(from_email: str, account_id: int | None) -> SendingDomain | None:
    """The verified domain whose keys sign mail from this address for this account:
    the account's own before an operators' one; None when there is none."""
    return (
        SendingDomain.objects.usable_by(account_id)
        .filter(domain=domain_of(from_email))
        .order_by(F("account").asc(nulls_last=True))
        .first()
    )


def verified_sender_required() -> bool:
    return settings.REQUIRE_VERIFIED_SENDER_DOMAIN


def sender_allowed(from_email: str, account_id: int | None) -> bool:
    """Whether campaigns of the account may send from this address (always, unless
    REQUIRE_VERIFIED_SENDER_DOMAIN is on)."""
    if not verified_sender_required():
        return True
    return bool(from_email) and signing_domain(from_email, account_id) is not None


def sender_errors(from_email: str, account_id: int | None) -> list[str]:
    """Why a campaign may not be scheduled with this sender, empty when it may."""
    if sender_allowed(from_email, account_id):
        return []
    if not from_email:
        return ["Choose a sender address on a verified sending domain."]
    return [
        f"The sender address {from_email} is on {domain_of(from_email)}, which is not a "
        "verified sending domain. Add the domain under Account settings › Sending domains, "
        "publish its DKIM record in DNS and press “Check DNS”."
    ]
