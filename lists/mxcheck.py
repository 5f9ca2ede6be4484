"""Whether an address's domain can receive mail: an MX record, or else an A/AAAA record.

Only a definite "this name does not exist / has no such records" rejects an
address. When DNS itself fails (timeout, no nameserver, SERVFAIL, no resolver
configuration at all) the address is accepted: a broken resolver must not turn
real subscribers away.
"""

from __future__ import annotations

import logging

import dns.exception
import dns.resolver
from django.conf import settings

logger = logging.getLogger(__name__)

_NO_ANSWER = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)

# The system's resolver configuration. dnspython reads it when a Resolver is built; a
# module attribute so a deployment (or a test) can point it elsewhere.
RESOLV_CONF = "/etc/resolv.conf"

# Built once per process: parsing resolv.conf on every signup post cost a file read and
# a parse each time. A configuration that could not be read is not kept, so a resolver
# that appears later (a container's DNS coming up) is picked up by the next post.
_resolver: dns.resolver.Resolver | None = None


class _NullMX(Exception):
    """RFC 7505: a single "0 ." MX record says the domain accepts no mail at all."""


def resolver() -> dns.resolver.Resolver:
    """The process's resolver; raises dns.exception.DNSException (NoResolverConfiguration)
    when there is no usable configuration (no resolv.conf, or no nameserver in it)."""
    global _resolver
    if _resolver is None:
        built = dns.resolver.Resolver(filename=RESOLV_CONF)
        built.timeout = settings.SIGNUP_DNS_TIMEOUT
        built.lifetime = settings.SIGNUP_DNS_TIMEOUT
        # Two threads of a worker may both build one; either is as good as the other.
        _resolver = built
    return _resolver


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
    try:
        dns_resolver = resolver()
        return (
            _has_records(dns_resolver, domain, "MX")
            or _has_records(dns_resolver, domain, "A")
            or _has_records(dns_resolver, domain, "AAAA")
        )
    except _NullMX:
        return False
    except (dns.exception.DNSException, OSError):
        # Timeout, no nameservers, no configuration, SERVFAIL...: DNS is down, not the
        # domain. Accept.
        logger.warning("DNS check of %s failed; accepting the address", domain)
        return True
