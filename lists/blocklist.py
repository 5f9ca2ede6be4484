"""The blocklist: addresses and whole domains that are never imported, subscribed or mailed.

Everything that decides whether mail may go to an address asks here: either
:func:`is_blocked` for one address or :func:`blocked_subscribers_q` inside a query.
Entries with no account are global (operators); others hold for one account. A
domain entry blocks addresses at exactly that domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower

from lists import addresses
from lists.models import BlocklistEntry, SuppressedAddress

Kind = BlocklistEntry.Kind


def is_blocked(address: str, account: object | None) -> bool:
    """True if the address or its domain is blocked globally or for the account (or id)."""
    key = addresses.comparison_key(address.strip())
    domain = addresses.domain_of(key)
    account_id = getattr(account, "pk", account)
    connection = connections[router.db_for_read(BlocklistEntry)]
    with connection.cursor() as cursor:
        cursor.execute(
            _is_blocked_sql(connection),
            [key, domain, account_id, Kind.ADDRESS.value, key, Kind.DOMAIN.value, domain],
        )
        return cursor.fetchone() is not None


def is_blocked_or_erased(address: str, account_id: int, erased_hash: str) -> tuple[bool, bool]:
    """(blocked, erased) in one statement: the signup path asks both on every post.

    ``erased_hash`` is lists.preferences.address_hash of the address: whether the
    account holds it in SuppressedAddress (erased at the subscriber's request).
    """
    key = addresses.comparison_key(address.strip())
    domain = addresses.domain_of(key)
    connection = connections[router.db_for_read(BlocklistEntry)]
    suppressed = connection.ops.quote_name(SuppressedAddress._meta.db_table)
    # EXISTS over both tables in one row; LIMIT inside EXISTS is harmless on both databases.
    sql = (
        f"SELECT EXISTS ({_is_blocked_sql(connection)}),"  # noqa: S608
        f" EXISTS (SELECT 1 FROM {suppressed} WHERE account_id = %s AND address_hash = %s)"
    )
    params = [key, domain, account_id, Kind.ADDRESS.value, key, Kind.DOMAIN.value, domain]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, account_id, erased_hash])
        blocked, erased = cursor.fetchone()
    return bool(blocked), bool(erased)


def _is_blocked_sql(connection: BaseDatabaseWrapper) -> str:
    # Written by hand: every signup asks, and the ORM took longer to build it than the
    # database to answer. The IN puts "value" (the leading column of the blocklist_value
    # index) in the index condition whatever the planner makes of the OR, so a stale
    # estimate cannot turn it into a scan of a whole index. A NULL account id matches
    # global entries only.
    return (
        f"SELECT 1 FROM {connection.ops.quote_name(BlocklistEntry._meta.db_table)}"  # noqa: S608
        " WHERE value IN (%s, %s) AND (account_id IS NULL OR account_id = %s)"
        " AND ((kind = %s AND value = %s) OR (kind = %s AND value = %s)) LIMIT 1"
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
