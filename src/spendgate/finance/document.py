"""A finance document as renderer-neutral blocks (headings, paragraphs, key figures, tables)
whose figures are already rounded strings, so the HTML page and the PDF drawn from one
document can never show different numbers (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgate.finance.rounding import round_lines, round_total

NONE_MARK = "—"  # a figure that does not apply (no budget, no previous month)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 2: a section, 3: a part of one


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False  # an explanation rather than a figure: shown smaller


@dataclass(frozen=True)
class Figures:
    """Key figures, each a label and its value (the report's KPIs, a statement's references)."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int]  # columns of figures: right-aligned
    total: tuple[str, ...] | None = None  # the total row, when the table has one


Block = Heading | Paragraph | Figures | Table


@dataclass(frozen=True)
class Document:
    title: str
    month: str
    ledger_id: str
    blocks: tuple[Block, ...]

    @property
    def running_header(self) -> str:
        """What every printed page carries at the top."""
        return f"{self.title} · ledger {self.ledger_id}" if self.ledger_id else self.title


def usd(value: Decimal | None) -> str:
    """``$1,234.50``; a negative amount as accountants print it, ``-$1.90``."""
    if value is None:
        return NONE_MARK
    text = f"{abs(value):,.2f}"
    return f"-${text}" if value < 0 and text.strip("0.,") else f"${text}"


def money_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    money: Sequence[int],
    total_label: str | None,
    figures: Sequence[int] = (),
) -> Table:
    """Rows of text and Decimals. With ``total_label`` the ``money`` columns are rounded to
    cents by largest remainder and totalled, so the rounded lines add up to the rounded total
    shown; without, each figure is rounded on its own (no sum to keep). ``figures``: columns of
    other numbers (a score), right-aligned like the money."""
    if total_label is None:
        rounded = {c: [None if r[c] is None else round_total(r[c]) for r in rows] for c in money}
    else:
        rounded = {c: round_lines([r[c] or Decimal(0) for r in rows]) for c in money}
    body = []
    for r_i, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            if c in money:
                cells.append(NONE_MARK if value is None else usd(rounded[c][r_i]))
            else:
                cells.append("(none)" if value is None else str(value))
        body.append(tuple(cells))
    total = None
    if total_label is not None:
        total = (
            total_label,
            *(
                usd(round_total(sum((r[c] or Decimal(0) for r in rows), Decimal(0)))) if c in money else ""
                for c in range(1, len(headers))
            ),
        )
    return Table(tuple(headers), tuple(body), frozenset((*money, *figures)), total)
