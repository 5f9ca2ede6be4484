"""CSV cells that spreadsheets will not run as formulas.

Excel, LibreOffice and Google Sheets treat a cell starting with ``=``, ``+``, ``-`` or ``@``
as a formula (``=HYPERLINK(...)``, ``=cmd|...``), and a leading tab or carriage return
can hide such a prefix. Every CSV the panel hands out (exports, import reject reports)
passes its cells through :func:`neutralise`: a single quote in front makes the cell text.
The cost, accepted on purpose: a negative number like ``-5`` comes out as ``'-5``.
"""

from __future__ import annotations

from collections.abc import Iterable

DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """The cell as text, with a leading ``'`` when it starts with a formula character."""
    text = "" if value is None else str(value)
    if text.startswith(DANGEROUS_FIRST):
        return "'" + text
    return text


def neutralise_row(values: Iterable[object]) -> list[str]:
    return [neutralise(value) for value in values]
