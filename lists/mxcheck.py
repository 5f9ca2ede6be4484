"""Whether an address's domain can receive mail: an MX record, or else an A/AAAA record.

Only a definite "this name does not exist / has no such records" rejects an
address. When DNS itself fails (timeout, no nameserver, SERVFAIL) the address is
accepted: a broken resolver must not turn real subscribers away.
"""

from __future__ import annotations

import logging

import dns.exception
import dns.resolver
from django.conf import settings

logger = logging.getLogger(__name__)

_NO_ANSWER = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)


class _NullMX(Exception):
    """RFC 7505: a single "0 ." MX record says the domain accepts no mail at all."""


def _has_records(resolver: dns.resolver.Resolver, domain: str, rdtype: str) -> bool:
    try:
        answer = resolver.resolve(domain, rdtype, lifetime=settings.SIGNUP_DNS_TIMEOUT)
    except _NO_ANSWER:
        return False
    if rdtype == "MX" and [str(r.exchange) for r in answer] in (["."], [""]):
        raise _NullMX
    return True


def domain_accepts_mail(domain: str) -> bool:
    """False only when DNS answers that the domain has neither MX nor A/AAAA records."""
    if not settings.SIGNUP_DNS_CHECK:
        return True
    resolver = dns.resolver.Resolver()
    resolver.timeout = settings.SIGNUP_DNS_TIMEOUT
    resolver.lifetime = settings.SIGNUP_DNS_TIMEOUT
    try:
        return (
            _has_records(resolver, domain, "MX")
            or _has_records(resolver, domain, "A")
            or _has_records(resolver, domain, "AAAA")
        )
    except _NullMX:
        return False
    except (dns.exception.DNSException, OSError):
        # Timeout, no nameservers, SERVFAIL...: DNS is down, not the domain. Accept.
        logger.warning("DNS check of %s failed; accepting the address", domain)
        return True
