"""CSV for spreadsheets: every export is written through :func:`csv_text`, so no cell of it
can run as a formula.

Excel, LibreOffice and Google Sheets read a cell beginning with ``=``, ``+``, ``-``, ``@``,
TAB or CR as a formula: a customer header ``=HYPERLINK("https://evil", "refund")`` would
become a live link in finance's spreadsheet. As OWASP recommends ("CSV Injection"), such a
text cell is prefixed with a single quote, and every text cell is quoted, so a field cannot
break out into a cell of its own even when the file is opened with another separator.

What decides is the value's type, not its text: numbers are figures we computed,
written bare, so they stay numbers (a negative amount ``-1.5`` included), while every
``str`` is data that may have come from a request and is treated as text, even one that
looks like a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from spendgate.money import format_usd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Text a spreadsheet shows as text: a leading formula trigger is escaped with a quote."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


class _Figure(Decimal):
    """A Decimal the csv module writes bare (it is a number) and exactly (no exponent)."""

    def __str__(self) -> str:
        return format_usd(self)


def _cell(value: Any) -> Any:
    if value is None:
        return None  # an empty cell
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value  # counts and measures (latency); money comes as Decimal
    if isinstance(value, Decimal):
        return _Figure(value)
    if isinstance(value, Mapping | list):
        return neutralise(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())
    return neutralise(str(value))


class SafeWriter:
    """A ``csv.writer`` whose every row goes through ``_cell``: text quoted and neutralised,
    figures bare. For exports written line by line (finance files, FOCUS)."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")

    def writerow(self, values: Iterable[Any]) -> None:
        self._writer.writerow([_cell(value) for value in values])


def csv_text(fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header line and one line per row (missing keys are empty cells): text cells quoted
    and neutralised, figures bare."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(fields)
    for row in rows:
        writer.writerow(row.get(name) for name in fields)
    return out.getvalue()
