"""Custom field values: validation by type, so only plain JSON values are stored."""

from __future__ import annotations

import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from lists.models import CustomField

Type = CustomField.Type
# Numbers are stored as JSON numbers: a longer text or a larger magnitude is a typo or an
# attack (int() of 1e100000 builds a 100,000-digit integer, and past 4,300 digits raises).
MAX_NUMBER_CHARS = 40
MAX_NUMBER = Decimal(10) ** 15
TRUE_WORDS = {"1", "true", "yes", "y", "on", "x"}
FALSE_WORDS = {"0", "false", "no", "n", "off", ""}


def clean_value(field: CustomField, raw: object) -> object:
    """Returns the stored form of a value (None when empty), or raises ValidationError."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = str(raw).strip()
    problem = unstorable(text)
    if problem:
        raise ValidationError(f"{field.label}: {problem}")
    if field.type == Type.TEXT:
        if len(text) > 2000:
            raise ValidationError(f"{field.label}: longer than 2000 characters")
        return text
    if field.type == Type.NUMBER:
        return _number(field, text)
    if field.type == Type.DATE:
        if isinstance(raw, datetime.date):
            return raw.isoformat()
        for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
            try:
                return datetime.datetime.strptime(text, fmt).date().isoformat()  # noqa: DTZ007
            except ValueError:
                continue
        raise ValidationError(f"{field.label}: {text!r} is not a date (use YYYY-MM-DD)")
    if field.type == Type.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValidationError(f"{field.label}: {text!r} is not yes or no")
    if field.type == Type.CHOICE:
        for choice in field.choices:
            if text.lower() == str(choice).lower():
                return str(choice)
        raise ValidationError(
            f"{field.label}: {text!r} is not one of {', '.join(map(str, field.choices))}"
        )
    raise ValidationError(f"{field.label}: unknown field type {field.type}")


def _number(field: CustomField, text: str) -> int | float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValidationError(f"{field.label}: use at most {MAX_NUMBER_CHARS} characters")
    try:
        number = Decimal(text.replace(",", "."))
    except InvalidOperation as exc:
        raise ValidationError(f"{field.label}: {text[:40]!r} is not a number") from exc
    if not number.is_finite():
        raise ValidationError(f"{field.label}: {text!r} is not a number")
    # Compared before any int()/float(): "1e100000" is short but has 100,001 digits.
    if abs(number) >= MAX_NUMBER:
        raise ValidationError(f"{field.label}: {text!r} is too large (below 10^15, please)")
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def unstorable(text: str) -> str:
    """Why the database cannot store a text ("" if it can): PostgreSQL refuses NUL
    characters, and lone surrogates (from JSON's "\\ud800") are not UTF-8 at all."""
    if "\x00" in text:
        return "contains a NUL character"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "contains characters that are not valid text"
    return ""


def storable(text: str) -> str:
    """The text without what :func:`unstorable` objects to (for optional free text)."""
    if not unstorable(text):
        return text
    return "".join(c for c in text if c != "\x00" and not "\ud800" <= c <= "\udfff")


def clean_values(
    fields: list[CustomField], data: dict[str, object]
) -> tuple[dict[str, object], dict[str, str]]:
    """Validates the values for the given fields: returns (values, errors by key).

    Keys that are not defined fields are ignored; empty values are left out.
    """
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for field in fields:
        if field.key not in data:
            continue
        try:
            value = clean_value(field, data[field.key])
        except ValidationError as exc:
            errors[field.key] = exc.messages[0]
            continue
        if value is not None:
            values[field.key] = value
    return values, errors
