"""Sending domains: DKIM keys, the DNS records to publish, and checking them.

DNS is the outside world: every lookup has a short timeout and a failed lookup is
reported as "could not check", never as a crash.
"""

from __future__ import annotations

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


@dataclass
class DnsRecord:
    name: str
    type: str
    value: str


@dataclass
class CheckItem:
    name: str
    ok: bool | None  # None: the lookup itself failed
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
    includes = " ".join(
        sorted({r.spf_include for r in Relay.objects.filter(enabled=True) if r.spf_include})
    )
    found.append(DnsRecord(domain.domain, "TXT", f"v=spf1 {includes} ~all".replace("  ", " ")))
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

    spf = _txt(resolver, domain.domain)
    spf_records = [t for t in (spf or []) if t.lower().startswith("v=spf1")]
    includes = {r.spf_include for r in Relay.objects.filter(enabled=True) if r.spf_include}
    if spf is None:
        items.append(CheckItem("SPF", None, "the DNS lookup failed"))
    elif not spf_records:
        items.append(CheckItem("SPF", False, "no v=spf1 record"))
    else:
        missing = [inc for inc in includes if inc not in spf_records[0].split()]
        items.append(
            CheckItem(
                "SPF", not missing, f"missing {', '.join(missing)}" if missing else "in place"
            )
        )

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
