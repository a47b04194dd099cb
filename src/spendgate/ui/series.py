"""Report rows turned into what a chart and its table show (pure): spend per time bucket (day,
ISO week, month), one series per group. Amounts stay Decimal; a chart gets them as exact text
next to the number it plots, so what it shows can be checked against the report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd
from spendgate.reports.spec import ReportRow

ZERO = Decimal(0)


def bucket_of(day: date, grain: str) -> date:
    """The first day of ``day``'s bucket: itself, its ISO week's Monday, its month's first."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def buckets(since: date, until: date, grain: str) -> list[date]:
    """Every bucket of the range, empty ones included (a chart shows the gaps as zeros)."""
    out: list[date] = []
    day = since
    while day <= until:
        start = bucket_of(day, grain)
        if not out or out[-1] != start:
            out.append(start)
        day += timedelta(days=1)
    return out


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass
class Series:
    """Spend per bucket for each group (``None`` is a group too: spend with the dimension
    unset); ``totals`` per bucket."""

    buckets: list[date]
    groups: dict[str | None, list[Decimal]] = field(default_factory=dict)
    totals: list[Decimal] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)

    def total(self) -> Decimal:
        return sum(self.totals, ZERO)

    def share_of(self, group: str | None) -> list[Decimal | None]:
        """``group``'s share of each bucket's spend (None where the bucket spent nothing)."""
        values = self.groups.get(group, [ZERO] * len(self.buckets))
        return [v / t if t else None for v, t in zip(values, self.totals, strict=True)]

    def top(self, n: int) -> list[str | None]:
        """The ``n`` groups that spent most over the range."""
        ranked = sorted(self.groups, key=lambda g: (-sum(self.groups[g], ZERO), str(g)))
        return ranked[:n]

    def chart(
        self, label: str, groups: Sequence[str | None] | None = None, none_label: str = "(none)"
    ) -> dict[str, Any]:
        """What the page's script plots: x as UTC epoch seconds, each series' values as exact
        decimal text (the script parses them to plot; tests compare them with the report)."""
        chosen = list(self.groups) if groups is None else list(groups)
        series = [{"label": "total", "values": [format_usd(v) for v in self.totals]}]
        for group in chosen:
            values = self.groups.get(group, [ZERO] * len(self.buckets))
            series.append({"label": none_label if group is None else group, "values": [format_usd(v) for v in values]})
        return {
            "label": label,
            "x": [int(datetime.combine(b, time(), UTC).timestamp()) for b in self.buckets],
            "series": series,
        }


def spend_series(rows: Iterable[ReportRow], group: str | None, since: date, until: date, grain: str) -> Series:
    """Rows of a report grouped by ``day`` (and ``group``, if given) as a Series."""
    axis = buckets(since, until, grain)
    index = {b: i for i, b in enumerate(axis)}
    series = Series(buckets=axis, totals=[ZERO] * len(axis), requests=[0] * len(axis))
    for row in rows:
        i = index.get(bucket_of(_as_date(row.dims["day"]), grain))
        if i is None:
            continue  # outside the range (the report was asked for exactly this range)
        series.totals[i] += row.cost_usd
        series.requests[i] += row.requests
        if group is not None:
            key = row.dims[group]
            values = series.groups.setdefault(key, [ZERO] * len(axis))
            values[i] += row.cost_usd
    return series


def bucket_label(day: date, grain: str) -> str:
    if grain == "month":
        return day.strftime("%Y-%m")
    if grain == "week":
        return f"week of {day.isoformat()}"
    return day.isoformat()
