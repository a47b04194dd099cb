"""A budget's burn chart as lines (pure): what the window has spent day by day, its limit, and
"at this pace": ``budgets/forecast.py``'s projection from today to the window's end, its
interval as a band, and the day it runs out when that comes before the window ends.

Every value is exact decimal text (the page's script parses it only to plot). A day's point is
the spend by the end of that day, so today's "at this pace" point is what is spent plus the
rest of today's expected spend, and the last point is the forecast's projection exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from spendgate.budgets.forecast import QUANTUM, Forecast
from spendgate.money import format_usd

ZERO = Decimal(0)
PACE = "at this pace"
PACE_HIGH = "at this pace (high)"
PACE_LOW = "at this pace (low)"
RUNS_OUT = "runs out"


def spent_line(days: Sequence[date], daily: Sequence[Decimal], today: date) -> list[str | None]:
    """The window's spend by the end of each day up to today (None after it)."""
    running, out = ZERO, []
    for day, value in zip(days, daily, strict=True):
        running += value
        out.append(format_usd(running) if day <= today else None)
    return out


def pace_lines(days: Sequence[date], forecast: Forecast) -> tuple[list[Decimal | None], ...]:
    """The projection and its interval's two ends by the end of each remaining day (None
    before today). The interval is the forecast's at the window's end; before it, the band
    is as wide as that in proportion to the spend still to come by then (what a day adds is
    what makes the end uncertain)."""
    expected = forecast.expected_by_day
    to_come = sum(expected.values(), ZERO)
    below = forecast.projected_usd - forecast.low_usd
    above = forecast.high_usd - forecast.projected_usd
    last = max(expected) if expected else None
    central: list[Decimal | None] = []
    low: list[Decimal | None] = []
    high: list[Decimal | None] = []
    added = ZERO
    for day in days:
        point: tuple[Decimal | None, Decimal | None, Decimal | None] = (None, None, None)
        if day == last:  # the window's end: the forecast's own figures, to the last digit
            point = (forecast.projected_usd, forecast.low_usd, forecast.high_usd)
        elif day in expected:
            added += expected[day]
            share = added / to_come if to_come else ZERO
            by_then = forecast.spent_usd + added
            point = (
                by_then,
                max(by_then - (below * share).quantize(QUANTUM), forecast.spent_usd),
                by_then + (above * share).quantize(QUANTUM),
            )
        central.append(point[0])
        low.append(point[1])
        high.append(point[2])
    return central, low, high


def burn_lines(
    days: Sequence[date],
    daily: Sequence[Decimal],
    today: date,
    limit: Decimal,
    forecast: Forecast | None,
) -> dict[str, Any]:
    """The chart's series (spent, limit, and when there is a forecast: at this pace, its band,
    the run-out day at the limit) and the band's pair of series labels."""
    series: list[dict[str, Any]] = [
        {"label": "spent", "values": spent_line(days, daily, today)},
        {"label": "limit", "values": [format_usd(limit)] * len(days), "style": "dash"},
    ]
    bands: list[list[str]] = []
    if forecast is not None:
        central, low, high = pace_lines(days, forecast)
        series += [
            {"label": PACE, "values": [_text(v) for v in central], "style": "dash"},
            {"label": PACE_HIGH, "values": [_text(v) for v in high], "style": "band"},
            {"label": PACE_LOW, "values": [_text(v) for v in low], "style": "band"},
        ]
        bands.append([PACE_HIGH, PACE_LOW])
        runs_out = forecast.runs_out_on
        if runs_out is not None and days and runs_out <= days[-1]:
            marks = [format_usd(limit) if day == runs_out else None for day in days]
            series.append({"label": f"{RUNS_OUT} {runs_out.isoformat()}", "values": marks, "style": "point"})
    return {"series": series, "bands": bands}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format_usd(value)
