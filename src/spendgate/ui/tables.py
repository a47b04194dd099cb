"""A page's tables: each is rendered by the same template macro and downloadable as CSV from
the same URL (``?csv=NAME``), so an export is built by exactly the query that built the page
and can show nothing the page could not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.reports.csv_export import csv_text
from spendgate.ui.templating import render

# How a cell is shown: text, money (exact decimal, USD), count, ratio (shown as a percent), ms.
KINDS = ("text", "money", "count", "ratio", "ms")


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = "text"
    shown: bool = True  # False: in the CSV export only (long ids)


@dataclass
class Table:
    name: str  # the ?csv=NAME of its export, and its data-testid
    title: str
    columns: Sequence[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_testid: str | None = None  # e.g. "project-row" (the contract's test hook)
    # column key -> the column whose value is the link of each row's cell (row["_link_" + key])
    empty: str = "Nothing in this range."

    def csv(self) -> str:
        return csv_text([c.key for c in self.columns], self.rows)


@dataclass
class View:
    """What a page handler returns: its template and context, and its tables by name."""

    template: str
    context: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    status_code: int = 200


def respond(request: Request, view: View) -> Response:
    """The page, or one of its tables as CSV when the query string asks ``csv=NAME``."""
    wanted = request.query_params.get("csv")
    if wanted is not None:
        table = next((t for t in view.tables if t.name == wanted), None)
        if table is None:
            return Response(f"no table {wanted[:64]!r} on this page", status_code=404, media_type="text/plain")
        filename = f"spendgate-{table.name}.csv"
        return Response(
            table.csv(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )
    tables = {t.name: t for t in view.tables}
    return render(request, view.template, {**view.context, "tables": tables}, status_code=view.status_code)


def rows_of(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(item) for item in items]
