"""The subscriber table's filter (search, status, custom field, sort) and its keyset pages.

:func:`filter_subscriptions` turns the list page's query parameters into a queryset;
the list page, bulk actions over "all matching" and the CSV export all call it, so a
filter means the same thing everywhere.

Speed at a million subscriptions (Postgres; ``manage.py bench_list_page`` measures it):
- every query is anchored on ``mailing_list`` (and ``status`` when filtered), walking the
  ``(mailing_list, status, subscriber)`` index or the unique ``(mailing_list, subscriber)``
  one in subscriber-id order, so a page reads about page_size + 1 index entries;
- pages are keyset pages: ``WHERE subscriber_id < cursor ORDER BY subscriber_id DESC LIMIT n``,
  never OFFSET, never a total COUNT (the header shows the per-status count columns);
- conditions on the subscriber (search, custom field) are a ``subscriber_id IN (subquery)``
  that carries the cursor bound too, and the page's subscribers are fetched by primary key
  in a second query, so no plan walks the subscriber table from its far end;
- search (:func:`_search`) is case-insensitive and has three forms:
  ``@example.org`` finds the addresses at that domain (the indexed ``domain`` column);
  three characters or more find the text anywhere in the address or the name,
  ``lower(email) LIKE '%q%'`` / ``lower(name) LIKE '%q%'``, served on Postgres by the
  pg_trgm GIN indexes of migration ``0007_subscriber_search_trigram`` (SQLite scans);
  one or two characters are a *prefix* match, ``LIKE 'q%'``, served by the
  ``(account_id, lower(...) text_pattern_ops)`` indexes of migration
  ``0002_subscriber_search_prefix``: a trigram index cannot narrow a pattern shorter
  than a trigram, and "a" anywhere would match nearly every row anyway.
- "newest" / "oldest" sort by subscriber id (the order in which addresses joined the
  account), which the indexes above serve; "email" sorts by lower(email), then id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import BooleanField, ExpressionWrapper, Prefetch, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Lower

from lists import addresses, blocklist
from lists import fields as field_values
from lists.models import CustomField, MailingList, Subscriber, Subscription

SORTS = {
    "newest": "Newest subscribers first",
    "oldest": "Oldest subscribers first",
    "email": "E-mail A–Z",
}
DEFAULT_SORT = "newest"
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
FILTER_KEYS = ("q", "status", "field", "value", "sort")


@dataclass
class ListFilter:
    """The parsed filter parameters; ``errors`` explains what was ignored or unmatchable."""

    q: str = ""
    status: str = ""
    field: str = ""
    value: object = None
    raw_value: str = ""
    sort: str = DEFAULT_SORT
    errors: list[str] = dataclasses.field(default_factory=list)
    matches_nothing: bool = False

    @property
    def is_filtered(self) -> bool:
        return bool(self.q or self.status or self.field)

    def params(self) -> dict[str, str]:
        """The query parameters that reproduce this filter (for links and bulk jobs)."""
        values = {
            "q": self.q,
            "status": self.status,
            "field": self.field,
            "value": self.raw_value if self.field else "",
            "sort": self.sort if self.sort != DEFAULT_SORT else "",
        }
        return {key: value for key, value in values.items() if value}


def _get(params: object, key: str) -> str:
    value = params.get(key, "") if hasattr(params, "get") else ""
    return str(value or "").strip()[:200]


def parse_filter(mailing_list: MailingList, params: object) -> ListFilter:
    """Reads q, status, field, value and sort; unknown values are reported, not raised."""
    result = ListFilter(q=_get(params, "q"))
    status = _get(params, "status")
    if status in Subscription.Status.values:
        result.status = status
    elif status:
        result.errors.append(f"Unknown status {status!r}: showing every status.")
    sort = _get(params, "sort")
    result.sort = sort if sort in SORTS else DEFAULT_SORT
    key = _get(params, "field")
    if key:
        _parse_field(mailing_list, result, key, _get(params, "value"))
    return result


def _parse_field(mailing_list: MailingList, result: ListFilter, key: str, raw: str) -> None:
    result.field, result.raw_value = key, raw
    definition = CustomField.objects.filter(account_id=mailing_list.owner_id, key=key).first()
    if definition is None:
        # Imported data may hold keys without a definition: compare as text.
        result.value = raw
        return
    try:
        result.value = field_values.clean_value(definition, raw)
    except ValidationError as exc:
        result.errors.extend(exc.messages)
        result.matches_nothing = True


def apply_filter(
    mailing_list: MailingList,
    flt: ListFilter,
    *,
    id_above: int | None = None,
    id_below: int | None = None,
) -> QuerySet[Subscription]:
    """The list's subscriptions matching the filter, ordered by the filter's sort.

    ``id_above`` / ``id_below`` bound the subscriber ids (the keyset cursor of the id
    sorts). They are applied to the subscriber subquery as well: Postgres does not carry
    an inequality across a join, and without it a deep page walks the subscriber table
    from its end down to the cursor.
    """
    queryset = Subscription.objects.filter(mailing_list=mailing_list)
    if flt.matches_nothing:
        return queryset.none()
    if flt.status:
        queryset = queryset.filter(status=flt.status)
    bounds = {"gt": id_above, "lt": id_below}
    bounds = {op: value for op, value in bounds.items() if value is not None}
    for op, value in bounds.items():
        queryset = queryset.filter(**{f"subscriber_id__{op}": value})
    people = _matching_subscribers(mailing_list, flt)
    if people is not None:
        for op, value in bounds.items():
            people = people.filter(**{f"id__{op}": value})
        queryset = queryset.filter(subscriber_id__in=people.values("id"))
    return queryset.order_by(*_ordering(flt.sort))


def _matching_subscribers(mailing_list: MailingList, flt: ListFilter) -> QuerySet | None:
    """The account's subscribers matching the search and field conditions, or None."""
    if not (flt.q or flt.field):
        return None
    # The account condition also lets Postgres use the (account_id, lower(...)) indexes.
    people = Subscriber.objects.filter(account_id=mailing_list.owner_id)
    if flt.q:
        people = _search(people, flt.q)
    if flt.field:
        # KeyTransform, not a "fields__<key>" keyword: a key with "__" must not become a path.
        people = people.alias(field_value=KeyTransform(flt.field, "fields"))
        if flt.value is None:
            people = people.filter(Q(field_value__isnull=True))
        else:
            people = people.filter(field_value=flt.value)
    return people


SUBSTRING_FROM = 3  # characters: shorter searches match the start only (see above)


def _search(people: QuerySet[Subscriber], q: str) -> QuerySet[Subscriber]:
    """Narrows subscribers to a search: ``@domain``, a substring, or a short prefix."""
    if q.startswith("@") and len(q) > 1:
        try:
            domain = addresses.normalise_domain(q[1:])
        except addresses.InvalidAddress:
            return people.none()
        return people.filter(domain=domain)
    text = q.lower()
    people = people.alias(email_key=Lower("email"), name_key=Lower("name"))
    if len(text) < SUBSTRING_FROM:
        return people.filter(Q(email_key__startswith=text) | Q(name_key__startswith=text))
    return people.filter(Q(email_key__contains=text) | Q(name_key__contains=text))


def _ordering(sort: str) -> list[object]:
    if sort == "oldest":
        return ["subscriber_id"]
    if sort == "email":
        return [Lower("subscriber__email"), "subscriber_id"]
    return ["-subscriber_id"]


def filter_subscriptions(mailing_list: MailingList, params: object) -> QuerySet[Subscription]:
    """The subscriptions of the list matching the page's parameters (q, status, field,
    value, sort), ordered as the page shows them. Unknown parameters are ignored; a field
    value that its type rejects matches nothing."""
    return apply_filter(mailing_list, parse_filter(mailing_list, params))


# --- Keyset pages -------------------------------------------------------------------------


@dataclass
class KeysetPage:
    """One page of rows; the links carry the filter and a cursor (no OFFSET, no COUNT)."""

    rows: list[Subscription]
    previous_url: str = ""
    next_url: str = ""
    extra: dict[str, str] = dataclasses.field(default_factory=dict)


def _cursor_of(row: Subscription, sort: str) -> str:
    if sort == "email":
        return f"{row.subscriber_id}:{row.subscriber.email.lower()}"
    return str(row.subscriber_id)


def _parse_cursor(text: str, sort: str) -> tuple[int, str] | None:
    head, _, email = text.partition(":")
    if not head.isdigit() or (sort == "email" and not email):
        return None
    return int(head), email


def _bounds(sort: str, cursor: tuple[int, str] | None, forward: bool) -> dict[str, int]:
    """id_above / id_below for a cursor of the id sorts (newest is descending)."""
    if cursor is None or sort == "email":
        return {}
    going_up = forward != (sort == "newest")
    return {"id_above": cursor[0]} if going_up else {"id_below": cursor[0]}


def _after_email(
    queryset: QuerySet[Subscription], cursor: tuple[int, str], forward: bool
) -> QuerySet[Subscription]:
    """Rows after (forward) or before the cursor in the (lower(email), id) order."""
    sub_id, email = cursor
    queryset = queryset.alias(sort_email=Lower("subscriber__email"))
    if forward:
        # The first condition gives Postgres an index range; the OR breaks ties by id.
        return queryset.filter(sort_email__gte=email).filter(
            Q(sort_email__gt=email) | Q(subscriber_id__gt=sub_id)
        )
    return queryset.filter(sort_email__lte=email).filter(
        Q(sort_email__lt=email) | Q(subscriber_id__lt=sub_id)
    )


def _page_subscribers() -> QuerySet[Subscriber]:
    """Subscribers with ``is_blocked``: the blocklist matches them (lists.blocklist)."""
    people = blocklist.annotate_email_key(Subscriber.objects.all())
    return people.annotate(
        is_blocked=ExpressionWrapper(blocklist.blocked_subscribers_q(), output_field=BooleanField())
    )


def page_size_from(params: object) -> int:
    size = _get(params, "size")
    return int(size) if size.isdigit() and int(size) in PAGE_SIZES else DEFAULT_PAGE_SIZE


def keyset_page(
    mailing_list: MailingList, flt: ListFilter, params: object, base_url: str = ""
) -> KeysetPage:
    """Fetches one page of the filter's rows: page_size + 1 rows, then their subscribers
    by primary key (two queries whatever the page size; no OFFSET, no COUNT).

    ``after=<cursor>`` continues forwards, ``before=<cursor>`` goes back.
    """
    size = page_size_from(params)
    after = _parse_cursor(_get(params, "after"), flt.sort)
    before = None if after else _parse_cursor(_get(params, "before"), flt.sort)
    cursor = after or before
    queryset = apply_filter(mailing_list, flt, **_bounds(flt.sort, cursor, forward=not before))
    if cursor and flt.sort == "email":
        queryset = _after_email(queryset, cursor, forward=not before)
    if before:
        queryset = queryset.reverse()
    # Subscribers come in a second query by primary key rather than a join: a join lets
    # Postgres pick a merge join that walks the subscriber table from its end. The same
    # query marks the blocked ones (an EXISTS per page row, not a query per row).
    queryset = queryset.prefetch_related(Prefetch("subscriber", queryset=_page_subscribers()))
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if before:
        rows.reverse()
    keep = flt.params()
    if size != DEFAULT_PAGE_SIZE:
        keep["size"] = str(size)
    page = KeysetPage(rows=rows, extra=keep)
    if rows:
        has_next = more if not before else True
        has_previous = bool(after) or (before is not None and more)
        if has_next:
            page.next_url = (
                f"{base_url}?{urlencode({**keep, 'after': _cursor_of(rows[-1], flt.sort)})}"
            )
        if has_previous:
            first = _cursor_of(rows[0], flt.sort)
            page.previous_url = f"{base_url}?{urlencode({**keep, 'before': first})}"
    elif before or after:
        page.previous_url = f"{base_url}?{urlencode(keep)}" if keep else base_url or "?"
    return page
