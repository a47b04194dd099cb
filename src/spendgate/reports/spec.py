"""What a report asks for and what it answers (pure; backends turn it into queries)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from spendgate.access.visibility import Visibility
from spendgate.attribution.model import UNALLOCATED
from spendgate.money import format_usd

PLAIN_DIMENSIONS = (
    "team",
    "project",
    "feature",
    "environment",
    "customer",
    "model",
    "provider",
    "key",
    "trace",
    "day",
    "month",
)
TAG_PREFIX = "tag:"
_TAG_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


class ReportError(ValueError):
    pass


def parse_dimensions(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    dims = tuple(part.strip() for part in text.split(",") if part.strip())
    for dim in dims:
        if dim.startswith(TAG_PREFIX):
            if not _TAG_NAME.match(dim[len(TAG_PREFIX) :]):
                raise ReportError(f"bad tag dimension {dim!r}: use tag:NAME with letters, digits, _ . -")
        elif dim not in PLAIN_DIMENSIONS:
            known = ", ".join((*PLAIN_DIMENSIONS, "tag:NAME"))
            raise ReportError(f"unknown dimension {dim!r}; known: {known}")
    if len(set(dims)) != len(dims):
        raise ReportError("a dimension is repeated")
    return dims


@dataclass(frozen=True)
class ReportQuery:
    by: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None  # inclusive
    # Whose spend the report may sum: a user's visibility (access/), None for everything.
    # The store makes it a WHERE clause, so rows and totals never include what is not visible.
    visible: Visibility | None = None
    # Only the spend whose dimension equals the value (None: the dimension is unset), for each
    # (dimension, value): the dashboard's drill-down (team -> project -> feature). Plain
    # dimensions other than day/month, and tag:NAME.
    where: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if self.since and self.until and self.until < self.since:
            raise ReportError("--until is before --since")
        for dim, _ in self.where:
            if dim in ("day", "month", "trace") or (dim not in PLAIN_DIMENSIONS and not dim.startswith(TAG_PREFIX)):
                raise ReportError(f"cannot filter on {dim!r}")
        parse_dimensions(",".join(dim for dim, _ in self.where))


@dataclass
class ReportRow:
    """One group's sums. ``cost_usd`` sums the priced requests only: when some requests of
    the group are unpriced it is a lower bound, and ``unpriced_requests`` says how many are
    missing from it; when all are, the cost is unknown (``cost_known`` is False) and is
    written as null (JSON) or an empty cell (CSV), never as a misleading 0."""

    dims: dict[str, str | None]
    cost_usd: Decimal = Decimal(0)
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written with a one-hour TTL
    reasoning_tokens: int = 0
    unpriced_requests: int = 0
    estimated_requests: int = 0
    error_requests: int = 0

    @property
    def cost_known(self) -> bool:
        """False when every request of the row is unpriced: its cost is unknown, not 0."""
        return self.unpriced_requests < self.requests

    def dim_values(self) -> dict[str, str | None]:
        """The dimension values as exported: a missing project is ``unallocated``."""
        row = dict(self.dims)
        if "project" in row and row["project"] is None:
            row["project"] = UNALLOCATED
        return row

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = self.dim_values()
        row.update(
            cost_usd=format_usd(self.cost_usd) if self.cost_known else None,
            requests=self.requests,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            reasoning_tokens=self.reasoning_tokens,
            unpriced_requests=self.unpriced_requests,
            estimated_requests=self.estimated_requests,
            error_requests=self.error_requests,
        )
        return row


@dataclass
class ReportResult:
    by: tuple[str, ...]
    rows: list[ReportRow] = field(default_factory=list)

    @property
    def total_cost_usd(self) -> Decimal:
        return sum((row.cost_usd for row in self.rows), Decimal(0))

    @property
    def total_requests(self) -> int:
        return sum(row.requests for row in self.rows)

    @property
    def unpriced_requests(self) -> int:
        return sum(row.unpriced_requests for row in self.rows)

    @property
    def cost_known(self) -> bool:
        """False when the report has requests and none of them is priced (see ReportRow)."""
        return self.unpriced_requests < self.total_requests or not self.rows

    def sort(self) -> ReportResult:
        """Biggest spend first; ties by dimension values so output is stable."""
        self.rows.sort(key=lambda r: (-r.cost_usd, -r.requests, [str(r.dims[d] or "") for d in self.by]))
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "by": list(self.by),
            "rows": [row.as_json() for row in self.rows],
            "total_cost_usd": format_usd(self.total_cost_usd) if self.cost_known else None,
            "total_requests": self.total_requests,
            "unpriced_requests": self.unpriced_requests,
        }
