"""Rollups: the ledger's usage pre-summed by hour and by day (pure; ``maintain.py`` stores them).

Every event lands in exactly one bucket of each rollup, in the same transaction that stores
it, so a rollup is always the exact sum of the events it covers and a report or a budget
window can be answered from a few thousand rollup rows instead of millions of events.

- ``rollup_hourly`` and ``rollup_daily`` keep every low-cardinality dimension reports group
  by and budgets are scoped by (``COLUMNS``).
- ``rollup_daily_lean`` keeps all of them but ``customer``: customers are the one dimension
  whose count grows with the business, and most reports (team, project, model…) and most
  budgets don't need it. On the benchmark's ledger it is 12 times smaller than the daily
  rollup, which is itself 12 times smaller than the events.

High-cardinality dimensions (``trace``, ``tag:NAME``) stay on the raw events only.

A rollup row is keyed by (bucket, dims id): the dimension values are interned once in a
``rollup_dims`` table, under ``dims_key`` (an injective text encoding, so NULL and "" stay
apart and unique constraints work on every database).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal

from spendgate.ledger.errors import StoreError
from spendgate.reports.spec import TAG_PREFIX, ReportError

# Event columns the rollups can keep, in dims-key order.
COLUMNS = ("provider", "model", "project", "team", "cost_center", "feature", "environment", "customer", "key_name")

# Report dimension -> rollup column (day and month come from the bucket).
REPORT_COLUMN = {
    "team": "team",
    "project": "project",
    "feature": "feature",
    "environment": "environment",
    "customer": "customer",
    "model": "model",
    "provider": "provider",
    "key": "key_name",
}
TIME_DIMENSIONS = ("day", "month")

# Budget scope kind -> rollup column (org needs none; tag scopes read raw events).
SCOPE_COLUMN = {"team": "team", "project": "project", "key": "key_name", "customer": "customer", "feature": "feature"}

# What each rollup row sums, after the cost (names shared by every backend's tables).
MEASURES = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
)

# Sums of money are exact: no rounding at any size (the default context keeps 28 digits).
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
ZERO = Decimal(0)


@dataclass(frozen=True)
class Rollup:
    table: str
    grain: str  # "hour" or "day"
    columns: tuple[str, ...]

    def keeps(self, columns: Iterable[str]) -> bool:
        return set(columns) <= set(self.columns)


HOURLY = Rollup("rollup_hourly", "hour", COLUMNS)
DAILY = Rollup("rollup_daily", "day", COLUMNS)
DAILY_LEAN = Rollup("rollup_daily_lean", "day", tuple(c for c in COLUMNS if c != "customer"))
ROLLUPS = (HOURLY, DAILY, DAILY_LEAN)


def choose(grain: str, columns: Iterable[str]) -> Rollup | None:
    """The smallest rollup of a grain that keeps these columns (fewer columns, fewer rows)."""
    needed = set(columns)
    fitting = [r for r in ROLLUPS if r.grain == grain and r.keeps(needed)]
    return min(fitting, key=lambda r: len(r.columns)) if fitting else None


def plan_report(by: Sequence[str], where: Sequence[str] = ()) -> Rollup | None:
    """The daily rollup a report can be answered from, or None when it needs raw events
    (a trace or tag dimension, grouped by or filtered on ``where``). Report ranges are whole
    UTC days, so daily always fits."""
    dims = [*by, *where]
    if any(dim == "trace" or dim.startswith(TAG_PREFIX) for dim in dims):
        return None
    return choose("day", [REPORT_COLUMN[dim] for dim in dims if dim not in TIME_DIMENSIONS])


def dims_key(values: Sequence[str | None]) -> str:
    """Injective text for a tuple of dimension values: each value length-prefixed, NULL as
    ``-``."""
    return "".join("-" if v is None else f"{len(v)}:{v}" for v in values)


def utc(ts: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC, as ``format_ts`` does."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --- budget windows -------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """A part of a time range and where its sum comes from: ``events``, ``hour`` or ``day``."""

    source: str
    start: datetime | None  # None: unbounded
    end: datetime | None


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(ts: datetime) -> datetime:
    floor = _floor_hour(ts)
    return floor if floor == ts else floor + timedelta(hours=1)


def _floor_day(ts: datetime) -> datetime:
    return datetime.combine(ts.date(), time(), UTC)


def _ceil_day(ts: datetime) -> datetime:
    floor = _floor_day(ts)
    return floor if floor == ts else floor + timedelta(days=1)


def spend_pieces(start: datetime | None, end: datetime | None) -> list[Piece]:
    """[start, end) cut into whole UTC days (daily rollups), whole hours (hourly rollups) and
    the partial hours at the edges (raw events). Budget windows start at local midnight, so
    the edges are empty, or a half or quarter hour in zones such as Asia/Kolkata."""
    start = None if start is None else utc(start)
    end = None if end is None else utc(end)
    if start is not None and end is not None and start >= end:
        return []
    h0 = None if start is None else _ceil_hour(start)
    h1 = None if end is None else _floor_hour(end)
    if h0 is not None and h1 is not None and h0 >= h1:
        return [Piece("events", start, end)]  # no whole hour inside
    pieces: list[Piece] = []
    if start is not None and start < h0:  # type: ignore[operator]
        pieces.append(Piece("events", start, h0))
    d0 = None if h0 is None else _ceil_day(h0)
    d1 = None if h1 is None else _floor_day(h1)
    if d0 is not None and d1 is not None and d0 >= d1:
        pieces.append(Piece("hour", h0, h1))  # no whole day inside
    else:
        if h0 is not None and h0 < d0:  # type: ignore[operator]
            pieces.append(Piece("hour", h0, d0))
        pieces.append(Piece("day", d0, d1))
        if h1 is not None and d1 < h1:  # type: ignore[operator]
            pieces.append(Piece("hour", d1, h1))
    if end is not None and h1 < end:  # type: ignore[operator]
        pieces.append(Piece("events", h1, end))
    return pieces


# --- retention --------------------------------------------------------------------------------
def first_whole_day(horizon: datetime) -> date:
    """The first UTC day with all its raw events still kept."""
    return _ceil_day(utc(horizon)).date()


def check_raw_report(since: date | None, horizon: datetime | None) -> None:
    """A report that needs raw events must not reach back before the retention horizon:
    it would silently miss what was pruned."""
    if horizon is None:
        return
    if since is None or datetime.combine(since, time(), UTC) < horizon:
        first = first_whole_day(horizon)
        raise ReportError(
            f"raw events before {horizon.isoformat()} were deleted by retention and only rollups remain:"
            f" a report by trace or tag can only cover whole days from {first.isoformat()}"
            f" (add --since {first.isoformat()}, or group by other dimensions)"
        )


def check_raw_spend(scope: object, start: datetime | None, pieces: Sequence[Piece], horizon: datetime | None) -> None:
    """A budget window's spend must not be summed from raw events retention deleted: an
    undercount would let the budget be overspent."""
    if horizon is None:
        return
    if any(p.source == "events" and (p.start is None or p.start < horizon) for p in pieces):
        since = start.isoformat() if start is not None else "the beginning"
        raise StoreError(
            f"the spend of {scope} since {since} needs raw events that retention deleted (all before"
            f" {horizon.isoformat()}); keep raw events longer than the longest budget period"
        )
