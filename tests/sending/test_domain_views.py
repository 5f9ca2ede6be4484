"""Accounts manage their sending domains in the panel. DNS is the outside world: the
resolver is replaced by a stub that answers with the records a test chooses."""

from __future__ import annotations

import re

import dns.resolver
import pytest
from django.urls import reverse

from sending import dkim, domains
from sending.models import SendingDomain
from tests.sending.test_domains import StubResolver, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def dns_answers(monkeypatch):  # noqa: ANN001, ANN201
    """What DNS answers: a dict the test fills in (name -> TXT strings)."""
    records: dict[str, list[str]] = {}
    monkeypatch.setattr(dns.resolver, "Resolver", lambda: StubResolver(records))
    return records


def domain_urls(domain: SendingDomain) -> list[tuple[str, str]]:
    args = [domain.uuid]
    return [
        ("get", reverse("sending:domain-detail", args=args)),
        ("post", reverse("sending:domain-check", args=args)),
        ("get", reverse("sending:domain-delete", args=args)),
        ("post", reverse("sending:domain-delete", args=args)),
    ]


def test_adding_a_domain_makes_its_keys_and_shows_the_records(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("sending:domain-create"),
        {"domain": "News.Example.com", "selector": "s1", "ed25519": "on"},
    )
    domain = SendingDomain.objects.get(account=owner)
    assert response.status_code == 302
    assert response["Location"] == reverse("sending:domain-detail", args=[domain.uuid])
    assert domain.domain == "news.example.com" and not domain.verified
    keys = domains.signing_keys(domain)
    assert [k.algorithm for k in keys] == [dkim.RSA_SHA256, dkim.ED25519_SHA256]
    assert keys[0].private_key.key_size == 2048

    page = owner_client.get(response["Location"]).content.decode()
    for record in domains.records(domain):
        assert record.name in page and record.value in page
    assert "s1._domainkey.news.example.com" in page
    assert "s1-ed._domainkey.news.example.com" in page
    assert 'data-copy-target="record-value-1"' in page
    assert "/static/js/copy.js" in page
    # The CSP allows no inline script: every script comes from a file.
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", page))
    assert "PRIVATE KEY" not in page


def test_rsa_alone_is_the_default(owner_client, owner) -> None:  # noqa: ANN001
    owner_client.post(
        reverse("sending:domain-create"), {"domain": "example.org", "selector": "mailpanel"}
    )
    domain = SendingDomain.objects.get(account=owner)
    assert [k.algorithm for k in domains.signing_keys(domain)] == [dkim.RSA_SHA256]


def test_a_domain_added_twice_is_refused(owner_client, owner) -> None:  # noqa: ANN001
    domains.create("example.org", account=owner)
    response = owner_client.post(
        reverse("sending:domain-create"), {"domain": "EXAMPLE.org", "selector": "mailpanel"}
    )
    assert response.status_code == 200
    assert "already" in response.content.decode()
    assert SendingDomain.objects.filter(account=owner).count() == 1


def test_an_invalid_domain_or_selector_is_refused(owner_client, owner) -> None:  # noqa: ANN001
    response = owner_client.post(
        reverse("sending:domain-create"), {"domain": "not a domain", "selector": "a b"}
    )
    assert response.status_code == 200
    assert not SendingDomain.objects.exists()


def test_check_dns_shows_the_checklist_and_verifies(owner_client, owner, dns_answers) -> None:  # noqa: ANN001
    domain = domains.create("example.org", account=owner)
    url = reverse("sending:domain-check", args=[domain.uuid])
    owner_client.post(url)
    domain.refresh_from_db()
    assert not domain.verified
    page = owner_client.get(reverse("sending:domain-detail", args=[domain.uuid])).content.decode()
    assert "no TXT record yet" in page

    dns_answers.update(published(domain))
    response = owner_client.post(url, follow=True)
    domain.refresh_from_db()
    assert domain.verified
    page = response.content.decode()
    assert "is verified" in page
    assert "the public key matches" in page and "DMARC" in page


def test_a_dns_failure_does_not_unverify_a_domain(owner, dns_answers) -> None:  # noqa: ANN001
    domain = domains.create("example.org", account=owner)
    dns_answers.update(published(domain))
    domains.check_dns(domain)
    assert domain.verified
    domains.check_dns(domain, StubResolver({}, fail=True))
    assert domain.verified  # "could not check" is not "wrong"
    domains.check_dns(domain, StubResolver({}))
    assert not domain.verified  # the record is gone


def test_the_index_lists_only_own_domains(owner_client, owner, stranger) -> None:  # noqa: ANN001
    domains.create("mine.example", account=owner)
    domains.create("theirs.example", account=stranger)
    domains.create("operators.example", account=None)
    page = owner_client.get(reverse("sending:domain-index")).content.decode()
    assert "mine.example" in page
    assert "theirs.example" not in page and "operators.example" not in page


def test_owner_reaches_every_domain_url(owner_client, owner, dns_answers) -> None:  # noqa: ANN001
    domain = domains.create("mine.example", account=owner)
    for method, url in domain_urls(domain):
        assert getattr(owner_client, method)(url).status_code in (200, 302), url
    assert not SendingDomain.objects.filter(id=domain.id).exists()  # the last one deleted it


def test_stranger_gets_404_on_every_domain_url(client, owner, stranger, dns_answers) -> None:  # noqa: ANN001
    # The same URLs as the owner's test, for another account's domain.
    domain = domains.create("mine.example", account=owner)
    client.force_login(stranger)
    for method, url in domain_urls(domain):
        assert getattr(client, method)(url).status_code == 404, url
    assert SendingDomain.objects.filter(id=domain.id).exists()
    domain.refresh_from_db()
    assert domain.last_checked_at is None


def test_operators_domains_are_not_editable_in_the_panel(owner_client, dns_answers) -> None:  # noqa: ANN001
    domain = domains.create("operators.example", account=None)
    for method, url in domain_urls(domain):
        assert getattr(owner_client, method)(url).status_code == 404, url


def test_delete_asks_then_deletes(owner_client, owner) -> None:  # noqa: ANN001
    domain = domains.create("mine.example", account=owner)
    url = reverse("sending:domain-delete", args=[domain.uuid])
    assert b"Delete the domain" in owner_client.get(url).content
    assert SendingDomain.objects.filter(id=domain.id).exists()
    response = owner_client.post(url)
    assert response["Location"] == reverse("sending:domain-index")
    assert not SendingDomain.objects.filter(id=domain.id).exists()


def test_the_account_page_links_to_sending_domains(owner_client) -> None:  # noqa: ANN001
    page = owner_client.get(reverse("account")).content.decode()
    assert reverse("sending:domain-index") in page
