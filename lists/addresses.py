"""E-mail address normalisation: the one rule every part of mailpanel applies.

The rule: surrounding whitespace is trimmed; the domain is lowercased and
IDNA-encoded (``jörg@Bücher.DE`` -> ``jörg@xn--bcher-kva.de``); the local part is
kept as written (some systems care about its case) but addresses are *compared*
case-insensitively: one account never holds ``Ann@x.org`` and ``ann@x.org`` as two
subscribers. The unique index is on ``lower(email)``, so comparisons use
:func:`comparison_key`.
"""

from __future__ import annotations

import re

# Deliberately simpler than RFC 5322: what real mailbox providers accept, no quoted
# local parts, no comments, no IP literals.
LOCAL_PART = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+)*$"
)
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_LENGTH = 254


class InvalidAddress(ValueError):
    """The text is not a usable e-mail address; the message says why."""


def normalise(address: str) -> str:
    """Returns the normalised address, or raises InvalidAddress naming the problem."""
    address = (address or "").strip()
    if not address:
        raise InvalidAddress("the address is empty")
    if any(ch.isspace() for ch in address) or "\x00" in address:
        raise InvalidAddress("the address contains spaces or control characters")
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise InvalidAddress("the address has no '@' or nothing before it")
    if len(local) > 64:
        raise InvalidAddress("the part before '@' is longer than 64 characters")
    if not LOCAL_PART.match(local):
        raise InvalidAddress("the part before '@' contains characters that are not allowed")
    domain = normalise_domain(domain)
    normalised = f"{local}@{domain}"
    if len(normalised) > MAX_LENGTH:
        raise InvalidAddress(f"the address is longer than {MAX_LENGTH} characters")
    return normalised


def normalise_domain(domain: str) -> str:
    """Lowercases and IDNA-encodes a domain; raises InvalidAddress if it cannot be one."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise InvalidAddress("the domain is missing")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress(f"the domain {domain!r} is not a valid domain name") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidAddress(f"the domain {domain!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise InvalidAddress("the domain cannot be an IP address")
    return ascii_domain


def is_valid(address: str) -> bool:
    try:
        normalise(address)
    except InvalidAddress:
        return False
    return True


def comparison_key(address: str) -> str:
    """The form two addresses are compared in (and the unique index holds)."""
    return address.lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
