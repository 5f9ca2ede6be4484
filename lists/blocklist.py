"""The blocklist: addresses and whole domains that are never imported, subscribed or mailed.

Everything that decides whether mail may go to an address asks here: either
:func:`is_blocked` for one address or :func:`blocked_subscribers_q` inside a query.
Entries with no account are global (operators); others hold for one account. A
domain entry blocks addresses at exactly that domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower

from lists import addresses
from lists.models import BlocklistEntry

Kind = BlocklistEntry.Kind


def _applies_to(account: object | None) -> Q:
    if account is None:
        return Q(account__isnull=True)
    return Q(account__isnull=True) | Q(account=account)


def is_blocked(address: str, account: object | None) -> bool:
    """True if the address or its domain is blocked globally or for the account."""
    key = addresses.comparison_key(address.strip())
    domain = addresses.domain_of(key)
    return (
        BlocklistEntry.objects.filter(_applies_to(account))
        .filter(Q(kind=Kind.ADDRESS, value=key) | Q(kind=Kind.DOMAIN, value=domain))
        .exists()
    )


def blocked_subscribers_q() -> Q:
    """A filter for Subscriber querysets matching blocked subscribers (of any account)."""
    entries = BlocklistEntry.objects.filter(
        Q(account__isnull=True) | Q(account=OuterRef("account"))
    ).filter(
        Q(kind=Kind.ADDRESS, value=OuterRef("email_key"))
        | Q(kind=Kind.DOMAIN, value=OuterRef("domain"))
    )
    return Q(Exists(entries))


def annotate_email_key(queryset):  # noqa: ANN001, ANN201
    """Adds the lowercased address that blocked_subscribers_q compares with."""
    return queryset.alias(email_key=Lower("email"))


@dataclass
class PasteResult:
    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)


def parse_entry(text: str) -> tuple[str, str]:
    """Returns (kind, value) for one pasted line: an address, or a domain (``@x.org`` too).

    Raises addresses.InvalidAddress naming the problem.
    """
    text = text.strip()
    if "@" in text.lstrip("@"):
        return Kind.ADDRESS, addresses.comparison_key(addresses.normalise(text))
    return Kind.DOMAIN, addresses.normalise_domain(text.lstrip("@").lstrip("*."))


def add_entries(
    text: str, *, account: object | None, reason: str = "", actor: object | None = None
) -> PasteResult:
    """Adds one entry per line (commas and semicolons also separate); reports each line."""
    result = PasteResult()
    for raw in text.replace(",", "\n").replace(";", "\n").splitlines():
        if not raw.strip():
            continue
        try:
            kind, value = parse_entry(raw)
        except addresses.InvalidAddress as exc:
            result.invalid.append((raw.strip(), str(exc)))
            continue
        if BlocklistEntry.objects.filter(account=account, kind=kind, value=value).exists():
            result.existing.append(value)
            continue
        try:
            with transaction.atomic():
                BlocklistEntry.objects.create(
                    account=account, kind=kind, value=value, reason=reason[:300], created_by=actor
                )
        except IntegrityError:
            result.existing.append(value)
            continue
        result.added.append(value)
    return result
