"""Sending domains: keys, records to publish, and the DNS checklist. DNS is the
outside world here, so a stub resolver answers with the records a test chooses."""

from __future__ import annotations

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


class StubResolver:
    def __init__(self, records: dict[str, list[str]], fail: bool = False) -> None:
        self.records = records
        self.fail = fail

    def resolve(self, name: str, rdtype: str, lifetime: float = 0) -> list[TXT]:
        if self.fail:
            raise dns.exception.Timeout
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
