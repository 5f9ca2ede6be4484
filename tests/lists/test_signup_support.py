"""Shared fixtures and helpers of the signup tests (no tests here).

DNS is the outside world: only dnspython's resolver is replaced, with a fake zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.resolver
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from mailpanel.lib import signing
from tests.factories import MailingListFactory, SignupFormFactory

__all__ = [
    "FakeDNS",
    "clean_cache",
    "fake_dns",
    "form",
    "mailing_list",
    "post_signup",
    "resolv_conf",
    "signup_data",
]


@dataclass
class FakeDNS:
    """Domains with MX records, domains that do not exist, and whether DNS is down."""

    no_domain: set[str]
    down: bool = False
    calls: int = 0

    def resolve(self, resolver: object, name: str, rdtype: str = "A", **kwargs: object) -> object:
        self.calls += 1
        if self.down:
            raise dns.exception.Timeout
        if str(name).rstrip(".") in self.no_domain:
            raise dns.resolver.NXDOMAIN
        if rdtype != "MX":
            raise dns.resolver.NoAnswer
        return [type("MX", (), {"exchange": f"mx.{name}."})()]


@pytest.fixture
def resolv_conf(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The resolver configuration dnspython reads: a file of the test's own, written by the
    test, and a process resolver built afresh from it."""
    from lists import mxcheck

    path = tmp_path_factory.mktemp("dns") / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\n")
    monkeypatch.setattr(mxcheck, "RESOLV_CONF", str(path))
    monkeypatch.setattr(mxcheck, "_resolver", None)
    return path


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch, resolv_conf) -> FakeDNS:  # noqa: ANN001
    fake = FakeDNS(no_domain={"no-such-domain.example"})
    monkeypatch.setattr(
        dns.resolver.Resolver,
        "resolve",
        lambda self, name, rdtype="A", **kw: fake.resolve(self, name, rdtype, **kw),
    )
    return fake


@pytest.fixture(autouse=True)
def clean_cache(settings) -> Iterator[None]:  # noqa: ANN001
    # Rate-limit counters live in the shared cache: every test starts from zero.
    settings.SIGNUP_MIN_FILL_SECONDS = 0
    settings.SIGNUP_DNS_CHECK = True
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mailing_list(owner):  # noqa: ANN001, ANN201
    return MailingListFactory(owner=owner, name="Garden News")


@pytest.fixture
def form(owner, mailing_list):  # noqa: ANN001, ANN201
    return SignupFormFactory(
        account=owner,
        lists=[mailing_list],
        field_config=[{"key": "name", "label": "Your name", "required": False}],
    )


def signup_data(form, **values: str) -> dict[str, str]:  # noqa: ANN001
    data = {"email": "new.reader@example.org", "mp_ts": signing.form_timestamp(str(form.uuid))}
    data.update(values)
    return data


def post_signup(
    form,  # noqa: ANN001
    client: Client | None = None,
    *,
    json_api: bool = False,
    ip: str = "192.0.2.1",
    **values: str,
):  # noqa: ANN201
    """Posts a signup; keyword arguments starting with HTTP_ are headers, others fields."""
    client = client or Client()
    headers = {k: v for k, v in values.items() if k.startswith("HTTP_")}
    fields = {k: v for k, v in values.items() if not k.startswith("HTTP_")}
    name = "public:form-submit" if json_api else "public:form"
    return client.post(
        reverse(name, args=[form.uuid]), signup_data(form, **fields), REMOTE_ADDR=ip, **headers
    )
