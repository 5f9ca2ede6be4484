"""Sending domains: keys, records to publish, and the DNS checklist. DNS is the
outside world here, so a stub resolver answers with the records a test chooses."""

from __future__ import annotations

from ipaddress import ip_address

import dns.exception
import dns.resolver
import pytest
from django.urls import reverse

from lists.addresses import InvalidAddress
from sending import dkim, domains
from sending.models import Relay, SendingDomain

pytestmark = pytest.mark.django_db


class TXT:
    def __init__(self, text: str) -> None:
        self.strings = [text[i : i + 255].encode() for i in range(0, len(text), 255)]


class Address:
    def __init__(self, address: str) -> None:
        self.address = address


class Exchange:
    def __init__(self, exchange: str) -> None:
        self.exchange = f"{exchange}."


class StubResolver:
    """TXT records by name; A and AAAA answers from ``hosts`` (name -> addresses), MX
    answers from ``mx`` (name -> exchanges)."""

    def __init__(
        self,
        records: dict[str, list[str]],
        fail: bool = False,
        hosts: dict[str, list[str]] | None = None,
        failing: set[str] = frozenset(),
        mx: dict[str, list[str]] | None = None,
    ) -> None:
        self.records = records
        self.fail = fail
        self.hosts = hosts or {}
        self.mx = mx or {}
        self.failing = failing  # names whose lookups time out
        self.asked: list[tuple[str, str]] = []

    def resolve(self, name: str, rdtype: str, lifetime: float = 0) -> list:
        self.asked.append((name, rdtype))
        if self.fail or name in self.failing:
            raise dns.exception.Timeout
        if rdtype == "MX":
            if name not in self.mx:
                raise dns.resolver.NoAnswer
            return [Exchange(e) for e in self.mx[name]]
        if rdtype in ("A", "AAAA"):
            if name not in self.hosts:
                raise dns.resolver.NXDOMAIN
            version = 4 if rdtype == "A" else 6
            found = [Address(a) for a in self.hosts[name] if ip_address(a).version == version]
            if not found:
                raise dns.resolver.NoAnswer
            return found
        if name not in self.records:
            raise dns.resolver.NXDOMAIN
        return [TXT(t) for t in self.records[name]]


def published(domain: SendingDomain) -> dict[str, list[str]]:
    return {r.name: [r.value] for r in domains.records(domain)}


def test_a_new_domain_gets_a_key_whose_record_signs_verifiably(owner) -> None:  # noqa: ANN001
    domain = domains.create("News.Example.COM", account=owner, ed25519=True)
    assert domain.domain == "news.example.com"
    assert "PRIVATE KEY" not in domain.private_key_encrypted
    names = [r.name for r in domains.records(domain)]
    assert names[:2] == [
        "mailpanel._domainkey.news.example.com",
        "mailpanel-ed._domainkey.news.example.com",
    ]
    keys = domains.signing_keys(domain)
    assert [k.algorithm for k in keys] == [dkim.RSA_SHA256, dkim.ED25519_SHA256]


def test_an_invalid_domain_is_refused(owner) -> None:  # noqa: ANN001
    with pytest.raises(InvalidAddress):
        domains.create("not a domain", account=owner)


def test_check_dns_verifies_when_dkim_is_published(owner) -> None:  # noqa: ANN001
    Relay.objects.create(
        name="r", host="smtp.example.com", spf_include="include:_spf.relay.example"
    )
    domain = domains.create("example.com", account=owner)
    items = domains.check_dns(domain, StubResolver(published(domain)))
    assert [(i.name.split()[0], i.ok) for i in items] == [
        ("DKIM", True),
        ("SPF", True),
        ("DMARC", True),
    ]
    assert domain.verified


def test_check_dns_names_what_is_missing(owner) -> None:  # noqa: ANN001
    Relay.objects.create(
        name="r", host="smtp.example.com", spf_include="include:_spf.relay.example"
    )
    domain = domains.create("example.com", account=owner)
    records = {"example.com": ["v=spf1 mx ~all"]}
    items = {i.name.split()[0]: i for i in domains.check_dns(domain, StubResolver(records))}
    assert items["DKIM"].ok is False and items["DKIM"].detail == "no TXT record yet"
    assert items["SPF"].ok is False and "include:_spf.relay.example" in items["SPF"].detail
    assert items["DMARC"].ok is False
    assert not domain.verified


def test_dns_failure_is_reported_not_raised(owner) -> None:  # noqa: ANN001
    domain = domains.create("example.com", account=owner)
    items = domains.check_dns(domain, StubResolver({}, fail=True))
    assert all(i.ok is None for i in items)
    assert not domain.verified


def test_operator_adds_a_domain_in_the_admin_and_sees_the_records(operator_client) -> None:  # noqa: ANN001
    response = operator_client.post(
        reverse("admin:sending_sendingdomain_add"),
        {"domain": "mail.example.org", "selector": "s1", "ed25519": "on"},
    )
    assert response.status_code == 302
    domain = SendingDomain.objects.get(domain="mail.example.org")
    page = operator_client.get(reverse("admin:sending_sendingdomain_change", args=[domain.pk]))
    assert b"s1._domainkey.mail.example.org" in page.content
    assert b"v=DKIM1; k=rsa; p=" in page.content


# SPF: checked against the relays the domain's account may send through; a relay with
# an include needs that include, one without needs its addresses authorised.


def spf_of(domain: SendingDomain, resolver: StubResolver) -> domains.CheckItem:
    (item,) = [i for i in domains.check_dns(domain, resolver) if i.name == "SPF"]
    return item


def test_spf_is_checked_against_the_accounts_dedicated_relays_only(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="shared", host="smtp.shared.example",
                         spf_include="include:_spf.shared.example")  # fmt: skip
    dedicated = Relay.objects.create(name="own", host="smtp.own.example",
                                     spf_include="include:_spf.own.example")  # fmt: skip
    dedicated.accounts.add(owner)
    domain = domains.create("example.com", account=owner)
    spf = {"example.com": ["v=spf1 include:_spf.own.example -all"]}
    item = spf_of(domain, StubResolver(spf))
    assert (item.ok, item.detail) == (True, "in place for own")
    # The record to publish names the same relays.
    assert domains.records(domain)[-2].value == "v=spf1 include:_spf.own.example ~all"

    item = spf_of(
        domain, StubResolver({"example.com": ["v=spf1 include:_spf.shared.example -all"]})
    )
    assert item.ok is False and item.detail == "missing include:_spf.own.example (relay own)"


def test_spf_of_an_account_without_dedicated_relays_ignores_other_accounts_relays(
    owner, stranger
) -> None:  # noqa: ANN001
    Relay.objects.create(name="shared", host="smtp.shared.example",
                         spf_include="include:_spf.shared.example")  # fmt: skip
    theirs = Relay.objects.create(name="theirs", host="smtp.theirs.example",
                                  spf_include="include:_spf.theirs.example")  # fmt: skip
    theirs.accounts.add(stranger)
    Relay.objects.create(name="off", host="smtp.off.example", enabled=False,
                         spf_include="include:_spf.off.example")  # fmt: skip
    domain = domains.create("example.com", account=owner)
    item = spf_of(
        domain, StubResolver({"example.com": ["v=spf1 include:_spf.shared.example ~all"]})
    )
    assert (item.ok, item.detail) == (True, "in place for shared")


def test_an_operators_domain_needs_every_enabled_relay(owner) -> None:  # noqa: ANN001
    # Any account may send from it, so also through the dedicated relays.
    Relay.objects.create(name="shared", host="smtp.shared.example",
                         spf_include="include:_spf.shared.example")  # fmt: skip
    dedicated = Relay.objects.create(name="own", host="smtp.own.example",
                                     spf_include="include:_spf.own.example")  # fmt: skip
    dedicated.accounts.add(owner)
    domain = domains.create("example.com", account=None)
    item = spf_of(
        domain, StubResolver({"example.com": ["v=spf1 include:_spf.shared.example ~all"]})
    )
    assert item.ok is False and "include:_spf.own.example" in item.detail


RELAY_HOSTS = {"smtp.relay.example": ["192.0.2.10", "2001:db8::10"]}


@pytest.mark.parametrize(
    ("record", "hosts"),
    [
        ("v=spf1 mx -all", {}),
        ("v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all", {}),
        ("v=spf1 +ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", {}),
        ("v=spf1 a:smtp.relay.example -all", {}),
        ("v=spf1 a/24 a//64 -all", {"example.com": ["192.0.2.1", "2001:db8::1"]}),
        ("v=spf1 include:_spf.other.example ip4:192.0.2.10 ip6:2001:db8::10 -all", {}),
    ],
)
def test_a_relay_without_include_passes_when_its_addresses_are_authorised(
    owner, record: str, hosts: dict[str, list[str]]
) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example")
    domain = domains.create("example.com", account=owner)
    resolver = StubResolver({"example.com": [record]}, hosts={**RELAY_HOSTS, **hosts},
                            mx={"example.com": ["smtp.relay.example"]})  # fmt: skip
    item = spf_of(domain, resolver)
    assert (item.ok, item.detail) == (True, "in place for r")


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 mx a ~all",  # the domain has neither
        "v=spf1 ip4:192.0.2.10 -all",  # the IPv6 address is not covered
        "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::10 -all",
        "v=spf1 -ip4:192.0.2.10 ip4:192.0.2.0/24 ip6:2001:db8::10 -all",  # first match decides
        "v=spf1 -include:_spf.other.example ~all",  # may refuse, never authorise
    ],
)
def test_a_relay_without_include_fails_when_an_address_is_not_authorised(
    owner, record: str
) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example")
    domain = domains.create("example.com", account=owner)
    item = spf_of(domain, StubResolver({"example.com": [record]}, hosts=RELAY_HOSTS))
    assert item.ok is False
    assert item.detail.startswith("relay r's address ") and "is not authorised" in item.detail


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 include:_spf.relay.example ~all",  # what the include holds is not followed
        "v=spf1 redirect=_spf.relay.example",
        "v=spf1 ?include:_spf.other.example ip4:192.0.2.10 ip6:2001:db8::10 -all",
    ],
)
def test_a_relay_without_include_cannot_be_verified_through_unfollowed_mechanisms(
    owner, record: str
) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example")
    domain = domains.create("example.com", account=owner)
    item = spf_of(domain, StubResolver({"example.com": [record]}, hosts=RELAY_HOSTS))
    assert item.ok is None  # a warning, not a pass
    assert item.detail.startswith("cannot verify: relay r has no SPF include configured")


def test_a_relay_whose_host_has_no_address_cannot_be_verified(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example")
    domain = domains.create("example.com", account=owner)
    item = spf_of(domain, StubResolver({"example.com": ["v=spf1 a mx -all"]}))
    assert item.ok is None
    assert item.detail == (
        "cannot verify: relay r has no SPF include configured and its host "
        "smtp.relay.example has no address"
    )


def test_a_failed_lookup_of_the_relays_host_is_not_a_verdict(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example")
    domain = domains.create("example.com", account=owner)
    resolver = StubResolver({"example.com": ["v=spf1 -all"]}, failing={"smtp.relay.example"})
    item = spf_of(domain, resolver)
    assert item.ok is None and "lookup of relay r's host smtp.relay.example failed" in item.detail


def test_a_relay_given_by_address_is_checked_without_resolving_it(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="192.0.2.10")
    domain = domains.create("example.com", account=owner)
    assert domains.records(domain)[-2].value == "v=spf1 ip4:192.0.2.10 ~all"
    resolver = StubResolver({"example.com": ["v=spf1 ip4:192.0.2.0/28 -all"]})
    assert spf_of(domain, resolver).ok is True
    assert ("192.0.2.10", "A") not in resolver.asked


def test_an_ip_include_is_covered_by_a_wider_range(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example", spf_include="ip4:192.0.2.10")
    domain = domains.create("example.com", account=owner)
    wide = StubResolver({"example.com": ["v=spf1 ip4:192.0.2.0/24 -all"]})
    assert spf_of(domain, wide).ok is True
    narrow = StubResolver({"example.com": ["v=spf1 ip4:192.0.2.11 -all"]})
    item = spf_of(domain, narrow)
    assert item.ok is False and "192.0.2.10 is not authorised" in item.detail


def test_two_spf_records_are_an_error(owner) -> None:  # noqa: ANN001
    Relay.objects.create(name="r", host="smtp.relay.example", spf_include="include:_spf.r.example")
    domain = domains.create("example.com", account=owner)
    records = {"example.com": ["v=spf1 include:_spf.r.example ~all", "v=spf1 mx -all"]}
    item = spf_of(domain, StubResolver(records))
    assert item.ok is False and "more than one v=spf1 record" in item.detail


def test_with_no_relay_spf_cannot_be_verified(owner) -> None:  # noqa: ANN001
    domain = domains.create("example.com", account=owner)
    item = spf_of(domain, StubResolver({"example.com": ["v=spf1 mx -all"]}))
    assert item.ok is None and item.detail.startswith("cannot verify: no enabled relay")
