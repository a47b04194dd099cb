"""What a report asks for and what it answers (pure; backends turn it into queries)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spendgate.access.visibility import Visibility
from spendgate.attribution.model import UNALLOCATED
from spendgate.money import format_usd
from spendgate.usage.service_tier import STANDARD, normalize_service_tier

PLAIN_DIMENSIONS = (
    "team",
    "project",
    "feature",
    "environment",
    "customer",
    "model",
    "provider",
    "key",
    "source",
    "trace",
    "day",
    "month",
    "cost_center",
    "service_tier",
    "week",
    "hour",
)
TAG_PREFIX = "tag:"
_TAG_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

# Time dimensions and the label each gives a group (UTC; fixed width, so text order is time
# order): hour "2025-03-10T14:00Z", day "2025-03-10", week the ISO 8601 week "2025-W11"
# (weeks start on Monday; week 1 holds the year's first Thursday, so "2025-W01" starts on
# 2024-12-30), month "2025-03". A --where value is one of these, in ASCII digits.
TIME_DIMENSIONS = ("hour", "day", "week", "month")
_TIME_LABEL = {
    "hour": re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})(?::00Z?)?$", re.ASCII),
    "day": re.compile(r"^(\d{4}-\d{2}-\d{2})$", re.ASCII),
    "week": re.compile(r"^(\d{4})-W(\d{2})$", re.ASCII),
    "month": re.compile(r"^(\d{4})-(\d{2})$", re.ASCII),
}
# What a service tier nobody named is reported as: such a request was priced at the standard rate.
UNNAMED_TIER = STANDARD
# Bounds on --where: its values are matched in SQL parameters, never spliced into SQL.
MAX_WHERE_TERMS = 200
MAX_WHERE_VALUE = 512

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)
_COUNTS = ("requests", "unpriced_requests", "estimated_requests", "error_requests")


class ReportError(ValueError):
    pass


def check_dimension(dim: str) -> str:
    if dim.startswith(TAG_PREFIX):
        if not _TAG_NAME.match(dim[len(TAG_PREFIX) :]):
            raise ReportError(f"bad tag dimension {dim[:80]!r}: use tag:NAME with letters, digits, _ . -")
    elif dim not in PLAIN_DIMENSIONS:
        known = ", ".join((*PLAIN_DIMENSIONS, "tag:NAME"))
        raise ReportError(f"unknown dimension {dim[:80]!r}; known: {known}")
    return dim


def parse_dimensions(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    dims = tuple(check_dimension(part.strip()) for part in text.split(",") if part.strip())
    if len(set(dims)) != len(dims):
        raise ReportError("a dimension is repeated")
    return dims


# A --where filter: (dimension, the values it may have), one entry per dimension, by name.
# A value of None selects the rows with no value for the dimension.
Where = tuple[tuple[str, tuple[str | None, ...]], ...]


def parse_where(terms: Iterable[str]) -> Where:
    """``--where DIM=VALUE`` terms as a filter: a row must match every dimension named, and one
    of the values given for each (values of one dimension are alternatives). An empty VALUE
    selects a missing value; ``project=unallocated`` is the missing project."""
    wanted: dict[str, list[str | None]] = {}
    for count, term in enumerate(terms, 1):
        if count > MAX_WHERE_TERMS:
            raise ReportError(f"too many --where terms (at most {MAX_WHERE_TERMS})")
        dim, sep, value = term.partition("=")
        if not sep:
            raise ReportError(f"bad --where {term[:80]!r}: use DIM=VALUE, e.g. team=platform")
        dim = check_dimension(dim.strip())
        values = wanted.setdefault(dim, [])
        for one in where_values(dim, value):
            if one not in values:
                values.append(one)
    return tuple((dim, tuple(wanted[dim])) for dim in sorted(wanted))


def where_values(dim: str, value: str) -> tuple[str | None, ...]:
    """The stored values ``DIM=VALUE`` selects (checked, normalised); None: a missing value."""
    if len(value) > MAX_WHERE_VALUE:
        raise ReportError(f"--where {dim}=…: the value is longer than {MAX_WHERE_VALUE} characters")
    if dim in TIME_DIMENSIONS:
        return (time_label(dim, value),)
    if dim == "service_tier":
        tier = normalize_service_tier(value)
        if tier is None:
            raise ReportError(f"--where service_tier={value[:80]!r}: not a tier name (e.g. standard, flex, priority)")
        return (tier,)
    if value == "":
        return (None,)
    if dim == "project" and value == UNALLOCATED:
        return (None, UNALLOCATED)
    return (value,)


def time_label(dim: str, value: str) -> str:
    """A time dimension's value as reports label it (an hour may omit its ``:00Z``)."""
    match = _TIME_LABEL[dim].match(value.strip())
    try:
        if match is None:
            raise ValueError
        if dim == "hour":
            hour = int(match[2])
            datetime.fromisoformat(f"{match[1]}T{hour:02d}:00")
            return f"{match[1]}T{hour:02d}:00Z"
        if dim == "day":
            return date.fromisoformat(match[1]).isoformat()
        if dim == "week":
            date.fromisocalendar(int(match[1]), int(match[2]), 1)
            return f"{match[1]}-W{match[2]}"
        date(int(match[1]), int(match[2]), 1)
        return f"{match[1]}-{match[2]}"
    except ValueError:
        shapes = {"hour": "2025-03-10T14", "day": "2025-03-10", "week": "2025-W11 (ISO week)", "month": "2025-03"}
        raise ReportError(f"bad --where {dim}={value[:80]!r}: expected {shapes[dim]}") from None


def time_span(dim: str, labels: Iterable[str]) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) that time labels (``time_label``'s) cover together: a
    range condition the database can answer from its time index, around the exact match."""
    spans = []
    for label in labels:
        if dim == "hour":
            start = datetime.fromisoformat(f"{label[:13]}:00+00:00")
            spans.append((start, start + timedelta(hours=1)))
            continue
        if dim == "day":
            first, days = date.fromisoformat(label), 1
        elif dim == "week":
            first, days = date.fromisocalendar(int(label[:4]), int(label[6:8]), 1), 7
        else:
            first = date(int(label[:4]), int(label[5:7]), 1)
            days = ((first + timedelta(days=31)).replace(day=1) - first).days
        start = datetime.combine(first, time(), UTC)
        spans.append((start, start + timedelta(days=days)))
    return min(s for s, _ in spans), max(e for _, e in spans)


@dataclass(frozen=True)
class ReportQuery:
    by: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None  # inclusive
    where: Where = ()  # parse_where: only the rows matching it
    # Whose spend the report may sum: a user's visibility (access/), None for everything.
    # The store makes it a WHERE clause, so rows and totals never include what is not visible.
    visible: Visibility | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.until < self.since:
            raise ReportError("--until is before --since")


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
        """In time order when a dimension is a time (labels sort as times), then biggest spend
        first; ties by dimension values so output is stable."""
        times = [d for d in self.by if d in TIME_DIMENSIONS]
        self.rows.sort(
            key=lambda r: (
                [str(r.dims[d] or "") for d in times],
                -r.cost_usd,
                -r.requests,
                [str(r.dims[d] or "") for d in self.by],
            )
        )
        return self

    def totals(self) -> ReportRow:
        """Every figure summed over the rows (no dimensions)."""
        total = ReportRow(dims={})
        for row in self.rows:
            total.cost_usd += row.cost_usd
            for name in (*TOKEN_FIELDS, *_COUNTS):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return total

    def as_json(self) -> dict[str, Any]:
        totals = self.totals().as_json()
        totals["cost_usd"] = format_usd(self.total_cost_usd) if self.cost_known else None
        return {
            "by": list(self.by),
            "rows": [row.as_json() for row in self.rows],
            "total_cost_usd": totals["cost_usd"],
            "total_requests": self.total_requests,
            "unpriced_requests": self.unpriced_requests,
            "totals": totals,
        }
