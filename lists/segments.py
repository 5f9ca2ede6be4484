"""Segments: saved filters over an account's subscribers, kept as data.

A definition is ``{"match": "all" | "any", "conditions": [condition, ...]}``. Each
condition is a dict with a ``type``; ``CONDITION_TYPES`` maps a type to the pair of
functions that validate and compile it, so later issues add condition types
(engagement: opened or clicked within N days) with ``register(...)`` and nothing else.

Compilation builds a ``Q`` from ORM lookups only: values always travel as query
parameters, and custom field keys go through ``KeyTransform`` (never spliced into a
lookup string, so a key with ``__`` in it cannot change the meaning of the filter).
An empty definition matches every subscriber of the account.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import CharField, Exists, Func, JSONField, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Lower
from django.db.models.lookups import Exact, GreaterThan, IContains, IExact, IsNull, LessThan

from lists.addresses import InvalidAddress, normalise_domain
from lists.fields import clean_value
from lists.models import CustomField, MailingList, Segment, Subscriber, Subscription

Condition = dict[str, Any]
MATCHES = ("all", "any")
MAX_CONDITIONS = 50
MAX_DEPTH = 3
STATUSES = [value for value, _ in Subscription.Status.choices]
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Which field operators make sense for which custom field type.
FIELD_OPS: dict[str, tuple[str, ...]] = {
    CustomField.Type.TEXT: ("equals", "not_equals", "contains", "is_set", "is_not_set"),
    CustomField.Type.NUMBER: ("equals", "not_equals", "gt", "lt", "is_set", "is_not_set"),
    CustomField.Type.DATE: ("equals", "not_equals", "before", "after", "is_set", "is_not_set"),
    CustomField.Type.BOOLEAN: ("equals", "not_equals", "is_set", "is_not_set"),
    CustomField.Type.CHOICE: ("equals", "not_equals", "is_set", "is_not_set"),
}
VALUELESS_OPS = ("is_set", "is_not_set")
OP_LABELS = {
    "equals": "is",
    "not_equals": "is not",
    "contains": "contains",
    "before": "is before",
    "after": "is after",
    "gt": "is greater than",
    "lt": "is less than",
    "is_set": "is set",
    "is_not_set": "is not set",
    "domain": "has the domain",
}
EMAIL_OPS = ("equals", "contains", "domain")
NAME_OPS = ("equals", "contains")
DATE_OPS = ("before", "after")


class InvalidSegment(ValueError):
    """The definition does not validate; ``errors`` names every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class Context:
    """What conditions are checked against: the account's fields and lists, loaded once."""

    account: Any
    fields: dict[str, CustomField] = field(default_factory=dict)
    lists: dict[str, MailingList] = field(default_factory=dict)

    @classmethod
    def for_account(cls, account: Any) -> Context:
        fields = {f.key: f for f in CustomField.objects.filter(account=account)}
        lists = {
            str(ml.uuid): ml
            for ml in MailingList.objects.owned_by(account).only("id", "uuid", "name")
        }
        return cls(account=account, fields=fields, lists=lists)

    def find_list(self, value: object) -> MailingList | None:
        try:
            key = str(uuid.UUID(str(value)))
        except ValueError:
            return None
        return self.lists.get(key)


Validator = Callable[[Condition, Context], list[str]]
Compiler = Callable[[Condition, Context], Q]


SubjectGroups = list[tuple[str, list[tuple[str, str, str]]]]


@dataclass(frozen=True)
class EditorRows:
    """How the segment editor shows a registered condition type as one of its rows.

    A row is (what, op, value); ``what`` is ``<type>`` or ``<type>:<target>``.
    ``subjects`` gives the editor's "what" choices for an account, grouped, each with the
    operators it allows (space-separated); ``ops`` are those operators with their labels,
    ``valueless`` the ones that need no value; ``to_condition(target, op, value)`` and
    ``to_row(condition)`` convert between a row and a condition.
    """

    subjects: Callable[[Context], SubjectGroups]
    ops: tuple[tuple[str, str], ...]
    to_condition: Callable[[str, str, str], Condition]
    to_row: Callable[[Condition], dict]
    valueless: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditionType:
    label: str
    validate: Validator
    compile: Compiler
    editor: EditorRows | None = None


CONDITION_TYPES: dict[str, ConditionType] = {}


def register(
    name: str,
    *,
    label: str,
    validate: Validator,
    compile: Compiler,  # noqa: A002
    editor: EditorRows | None = None,
) -> None:
    """Adds (or replaces) a condition type: how to check it and how to turn it into a Q,
    and optionally how the segment editor offers it (else only the API can use it)."""
    CONDITION_TYPES[name] = ConditionType(
        label=label, validate=validate, compile=compile, editor=editor
    )


def editors() -> list[tuple[str, EditorRows]]:
    """The registered condition types the editor can show, in registration order."""
    return [(name, ct.editor) for name, ct in CONDITION_TYPES.items() if ct.editor]


# --- Public API ---------------------------------------------------------------------------


def validate(definition: dict, account: Any, *, context: Context | None = None) -> list[str]:
    """Returns the problems of a definition as sentences (empty when it is usable)."""
    context = context or Context.for_account(account)
    return _validate_group(definition, context, depth=0, where="")


def compile(definition: dict, account: Any, *, context: Context | None = None) -> Q:  # noqa: A001
    """Returns a Q over Subscriber for the definition; raises InvalidSegment if it is invalid.

    The Q does not restrict the account: ``subscribers_in`` and ``matching`` do that.
    """
    context = context or Context.for_account(account)
    errors = _validate_group(definition, context, depth=0, where="")
    if errors:
        raise InvalidSegment(errors)
    return _compile_group(definition, context)


def matching(definition: dict, account: Any) -> QuerySet[Subscriber]:
    """The account's subscribers that match a definition (raises InvalidSegment)."""
    return Subscriber.objects.filter(account=account).filter(compile(definition, account))


def subscribers_in(segment: Segment) -> QuerySet[Subscriber]:
    """The segment's account's subscribers that match it now (raises InvalidSegment)."""
    return matching(segment.definition, segment.account)


# --- Groups -------------------------------------------------------------------------------


def _validate_group(definition: object, context: Context, *, depth: int, where: str) -> list[str]:
    if not isinstance(definition, dict):
        return [f"{where}the definition is not an object"]
    errors = []
    if definition.get("match", "all") not in MATCHES:
        errors.append(f"{where}match must be 'all' or 'any'")
    conditions = definition.get("conditions", [])
    if not isinstance(conditions, list):
        return [*errors, f"{where}conditions must be a list"]
    if len(conditions) > MAX_CONDITIONS:
        errors.append(f"{where}more than {MAX_CONDITIONS} conditions")
    for number, condition in enumerate(conditions, start=1):
        label = f"{where}condition {number}: "
        if not isinstance(condition, dict):
            errors.append(f"{label}not an object")
            continue
        kind = condition.get("type")
        if kind == "group":
            if depth + 1 >= MAX_DEPTH:
                errors.append(f"{label}groups nest at most {MAX_DEPTH} deep")
            else:
                errors += _validate_group(condition, context, depth=depth + 1, where=label)
            continue
        if kind not in CONDITION_TYPES:
            errors.append(f"{label}unknown condition type {kind!r}")
            continue
        errors += [label + error for error in CONDITION_TYPES[kind].validate(condition, context)]
    return errors


def _compile_group(definition: dict, context: Context) -> Q:
    parts = []
    for condition in definition.get("conditions", []):
        if condition["type"] == "group":
            parts.append(_compile_group(condition, context))
        else:
            parts.append(CONDITION_TYPES[condition["type"]].compile(condition, context))
    combined = Q()
    for part in parts:
        combined = (combined | part) if definition.get("match") == "any" else (combined & part)
    # An empty Q() OR-ed with a part is the part alone, so "any" of one condition is right.
    return combined


# --- Custom fields ------------------------------------------------------------------------


class JSONValueType(Func):
    """The type name of a key's JSON value, to tell numbers from strings and booleans.

    A field whose type changed, or a key re-created with another type, can hold values
    of the old type; without this guard ``gt`` would match every string (JSON and SQLite
    both order strings above numbers) and Postgres would fail on a cast.
    """

    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return self.as_sql(compiler, connection, function="JSONB_TYPEOF", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        # JSON_EXTRACT hands SQLite a native value; booleans come out as integers, so
        # a boolean stored under a number key counts as 0 or 1 here.
        return self.as_sql(compiler, connection, function="TYPEOF", **extra)


def _is_number(key: str) -> Q:
    # "number" on Postgres (jsonb_typeof), "integer" or "real" on SQLite (typeof).
    return _in(JSONValueType(KeyTransform(key, "fields")), ("number", "integer", "real"))


def _in(lhs: Any, values: tuple[str, ...]) -> Q:
    q = Q()
    for value in values:
        q |= Q(Exact(lhs, value))
    return q


def _json(value: object) -> Value:
    # The lookup's left side is not resolved yet, so the value is typed here: it then
    # gets the JSONField's adaptation (jsonb on Postgres, JSON text on SQLite).
    return Value(value, output_field=JSONField())


def _validate_field(condition: Condition, context: Context) -> list[str]:
    key = condition.get("field")
    custom_field = context.fields.get(key) if isinstance(key, str) else None
    if custom_field is None:
        return [f"unknown field {key!r}"]
    op = condition.get("op")
    allowed = FIELD_OPS.get(custom_field.type, ())
    if op not in allowed:
        return [
            f"{custom_field.label} ({custom_field.get_type_display().lower()}) cannot use "
            f"{op!r}; use one of {', '.join(allowed)}"
        ]
    if op in VALUELESS_OPS:
        return []
    if op == "contains":
        return [] if str(condition.get("value") or "").strip() else ["contains needs a value"]
    try:
        value = clean_value(custom_field, condition.get("value"))
    except ValidationError as exc:
        return [exc.messages[0]]
    return [] if value is not None else [f"{custom_field.label}: a value is needed"]


def _compile_field(condition: Condition, context: Context) -> Q:
    custom_field = context.fields[condition["field"]]
    key, op = custom_field.key, condition["op"]
    text = KeyTextTransform(key, "fields")
    json_value = KeyTransform(key, "fields")
    is_set = Q(IsNull(text, False)) & ~Q(Exact(text, ""))
    if op == "is_set":
        return is_set
    if op == "is_not_set":
        return Q(IsNull(text, True)) | Q(Exact(text, ""))
    if op == "contains":
        return Q(IContains(text, str(condition["value"]).strip()))
    value = clean_value(custom_field, condition["value"])
    if custom_field.type == CustomField.Type.TEXT:
        equals = Q(IExact(text, value))
    elif custom_field.type in (CustomField.Type.NUMBER, CustomField.Type.BOOLEAN):
        # Compared as JSON values (jsonb on Postgres, JSON_EXTRACT on SQLite): numbers
        # numerically (5 equals 5.0), booleans as booleans, through the JSONField's own
        # key lookups so both databases get the right value adaptation.
        equals = Q(json_value.get_lookup("exact")(json_value, _json(value)))
    else:
        # Dates are stored as ISO strings and choices in their canonical spelling.
        equals = Q(Exact(text, value))
    if op == "equals":
        return equals
    if op == "not_equals":
        return Q(IsNull(text, True)) | ~equals
    if op in ("gt", "lt"):
        lookup = json_value.get_lookup(op)(json_value, _json(value))
        return Q(lookup) & _is_number(key)
    # before / after on ISO dates: string order is date order for YYYY-MM-DD.
    compare = LessThan if op == "before" else GreaterThan
    return Q(compare(text, value)) & Q(text.get_lookup("regex")(text, ISO_DATE.pattern))


register("field", label="Custom field", validate=_validate_field, compile=_compile_field)


# --- E-mail address and name --------------------------------------------------------------


def _text_value(condition: Condition) -> str:
    value = condition.get("value")
    return value.strip() if isinstance(value, str) else ""


def _validate_email(condition: Condition, context: Context) -> list[str]:
    op = condition.get("op")
    if op not in EMAIL_OPS:
        return [f"e-mail cannot use {op!r}; use one of {', '.join(EMAIL_OPS)}"]
    value = _text_value(condition)
    if not value:
        return ["e-mail: a value is needed"]
    if op == "domain":
        try:
            normalise_domain(value.lstrip("@"))
        except InvalidAddress as exc:
            return [f"e-mail domain: {exc}"]
    return []


def _compile_email(condition: Condition, context: Context) -> Q:
    op, value = condition["op"], _text_value(condition)
    if op == "equals":
        # Through lower(email), the expression the unique index is built on.
        return Q(Exact(Lower("email"), value.lower()))
    if op == "contains":
        return Q(email__icontains=value)
    return Q(domain=normalise_domain(value.lstrip("@")))


def _validate_name(condition: Condition, context: Context) -> list[str]:
    op = condition.get("op")
    if op not in NAME_OPS:
        return [f"name cannot use {op!r}; use one of {', '.join(NAME_OPS)}"]
    return [] if _text_value(condition) else ["name: a value is needed"]


def _compile_name(condition: Condition, context: Context) -> Q:
    value = _text_value(condition)
    if condition["op"] == "equals":
        return Q(name__iexact=value)
    return Q(name__icontains=value)


register("email", label="E-mail address", validate=_validate_email, compile=_compile_email)
register("name", label="Name", validate=_validate_name, compile=_compile_name)


# --- List membership and subscription date ------------------------------------------------


def _validate_membership(condition: Condition, context: Context) -> list[str]:
    errors = []
    if context.find_list(condition.get("list")) is None:
        # The same words for "no such list" and "another account's list": no probing.
        errors.append(f"unknown list {condition.get('list')!r}")
    status = condition.get("status", "any")
    if status != "any" and status not in STATUSES:
        errors.append(f"unknown status {status!r}; use any or one of {', '.join(STATUSES)}")
    return errors


def _membership(condition: Condition, context: Context) -> Exists:
    mailing_list = context.find_list(condition["list"])
    subscriptions = Subscription.objects.filter(
        subscriber=OuterRef("pk"), mailing_list=mailing_list
    )
    status = condition.get("status", "any")
    if status != "any":
        subscriptions = subscriptions.filter(status=status)
    return Exists(subscriptions)


def _compile_list(condition: Condition, context: Context) -> Q:
    return Q(_membership(condition, context))


def _compile_not_list(condition: Condition, context: Context) -> Q:
    return ~Q(_membership(condition, context))


def _parse_date(value: object) -> datetime.date | None:
    if not isinstance(value, str) or not ISO_DATE.match(value.strip()):
        return None
    try:
        return datetime.date.fromisoformat(value.strip())
    except ValueError:
        return None


def _validate_subscribed(condition: Condition, context: Context) -> list[str]:
    errors = []
    if condition.get("op") not in DATE_OPS:
        errors.append(f"subscribed cannot use {condition.get('op')!r}; use before or after")
    if _parse_date(condition.get("value")) is None:
        errors.append(f"subscribed: {condition.get('value')!r} is not a date (use YYYY-MM-DD)")
    if condition.get("list") and context.find_list(condition["list"]) is None:
        errors.append(f"unknown list {condition.get('list')!r}")
    return errors


def _compile_subscribed(condition: Condition, context: Context) -> Q:
    # Days are the account's days: "before 1 March" means before midnight where they live.
    tz = context.account.tzinfo()
    day = _parse_date(condition["value"])
    if condition["op"] == "before":
        start = datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
        when = {"created_at__lt": start}
    else:
        end = datetime.datetime.combine(
            day + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
        )
        when = {"created_at__gte": end}
    subscriptions = Subscription.objects.filter(subscriber=OuterRef("pk"), **when)
    if condition.get("list"):
        subscriptions = subscriptions.filter(mailing_list=context.find_list(condition["list"]))
    return Q(Exists(subscriptions))


register("list", label="On list", validate=_validate_membership, compile=_compile_list)
register("not_list", label="Not on list", validate=_validate_membership, compile=_compile_not_list)
register(
    "subscribed", label="Subscribed", validate=_validate_subscribed, compile=_compile_subscribed
)
