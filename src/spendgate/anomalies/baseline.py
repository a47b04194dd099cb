"""What a scope normally spends in an hour, and how far it normally strays (pure).

Built once a day per scope from its hourly costs (the hourly rollup; a missing hour is $0)
over the ``lookback_days`` complete days before that day, in the params' timezone:

- **season**: an hour's expectation is the median of the same weekday and hour of day
  over the lookback (four or five samples), so Monday 09:00 is compared with Mondays at
  09:00, not with Sunday night, and a weekly Tuesday-night job with Tuesday nights. A
  median, not a mean: one past runaway hour among four moves it by half the gap between
  two normal hours, not by a quarter of the spike. With fewer than
  ``min_season_samples`` (a scope younger than four weeks) the hour takes the higher of
  its own median and that of every weekday (or weekend day) at that hour.
- **spread**: 1.4826 x the median absolute residual (a robust sigma) of all weekday (or
  weekend) samples at that hour, ~21 samples instead of four, each against the median of
  the OTHER samples of its season (leave-one-out: the error of predicting a new day,
  which in-sample residuals understate by 40%); floored (see ``params``) so a flat or
  silent hour is not infinitely sure of itself.
- **history**: counted from the scope's first day with spend (or ``history_start``), so
  the days before a scope existed are not read as days it spent nothing; below
  ``min_history_days`` the baseline is not ``ready`` and nothing is flagged.
- **level** (:func:`recent_level`, hourly): how busy the scope has been in the last hours
  against its seasons, between 1 and ``max_level``; ``Baseline.at_level`` scales every
  expectation by it. This is the only trend term: a scope growing 3% a day sits at ~1.7x
  its 30-day medians, which the level absorbs and the ratio floors tolerate anyway,
  while an extrapolated trend would also extrapolate a past spike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from zoneinfo import ZoneInfo

from spendgate.anomalies.params import AnomalyParams

HOUR = timedelta(hours=1)
ZERO = Decimal(0)
ONE = Decimal(1)
# MAD x 1.4826 estimates a normal distribution's standard deviation.
MAD_TO_SIGMA = Decimal("1.4826")
WEEKEND = frozenset({5, 6})

Season = tuple[int, int]  # (weekday 0=Monday, hour of day) in the baseline's timezone


@dataclass(frozen=True, slots=True)
class HourExpectation:
    """One hour of a season: expected USD in the hour and its robust sigma (> 0)."""

    expected: Decimal
    spread: Decimal


@dataclass(frozen=True, slots=True)
class Baseline:
    day: date  # the local day it serves (built from the days before it)
    timezone: str
    history_days: int
    ready: bool  # enough history to flag anything
    typical_hour: Decimal  # median daily total / 24
    seasons: Mapping[Season, HourExpectation]
    level: Decimal = ONE  # how busy the scope is lately, relative to its seasons (>= 1)

    def season_of(self, at: datetime) -> Season:
        local = at if self.timezone == "UTC" else at.astimezone(ZoneInfo(self.timezone))
        return local.weekday(), local.hour

    def for_hour(self, at: datetime) -> HourExpectation:
        """The expectation of the hour containing ``at`` (any day: seasons repeat weekly),
        at the baseline's level."""
        hour = self.seasons[self.season_of(at)]
        if self.level == ONE:
            return hour
        return HourExpectation(hour.expected * self.level, hour.spread * self.level)

    def at_level(self, level: Decimal) -> Baseline:
        return replace(self, level=level)


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _first_spend_day(hourly: Mapping[datetime, Decimal], zone: ZoneInfo, before: datetime) -> date | None:
    first = min((at for at, cost in hourly.items() if cost > 0 and at < before), default=None)
    return None if first is None else first.astimezone(zone).date()


def _robust_sigma(residuals: list[Decimal]) -> Decimal:
    return median([abs(r) for r in residuals]) * MAD_TO_SIGMA if residuals else ZERO


def build_baseline(
    hourly: Mapping[datetime, Decimal],
    now: datetime,
    params: AnomalyParams,
    *,
    history_start: date | None = None,
) -> Baseline:
    """The baseline serving ``now``'s local day, from the complete days before it.

    ``hourly`` maps an hour's start (aware) to the scope's cost in that hour; hours it
    lacks cost $0. ``history_start`` is the scope's first day of spend when the caller
    knows it (else: the first hour with spend in ``hourly``).
    """
    zone = ZoneInfo(params.timezone)
    today = now.astimezone(zone).date()
    today_start = _local_midnight(today, zone)
    first = history_start or _first_spend_day(hourly, zone, today_start)
    history_days = 0 if first is None else max((today - first).days, 0)
    first_day = today - timedelta(days=min(history_days, params.lookback_days))

    # Samples by season, read hour by hour in UTC (a DST day has 23 or 25 of them).
    by_season: dict[Season, list[Decimal]] = {}
    daily_totals: dict[date, Decimal] = {}
    at, end = _local_midnight(first_day, zone), today_start
    utc = params.timezone == "UTC"
    while at < end:
        local = at if utc else at.astimezone(zone)
        cost = hourly.get(at, ZERO)
        by_season.setdefault((local.weekday(), local.hour), []).append(cost)
        day = local.date()
        daily_totals[day] = daily_totals.get(day, ZERO) + cost
        at += HOUR

    typical_hour = median(daily_totals.values()) / 24 if daily_totals else ZERO
    expected = _season_expectations(by_season, params.min_season_samples)
    spread = _season_spreads(by_season, expected, params.min_season_samples)
    floor = max(typical_hour * params.typical_hour_floor, params.min_spread_usd)
    seasons = {
        season: HourExpectation(value, max(spread[season], value * params.spread_floor_ratio, floor))
        for season, value in expected.items()
    }
    return Baseline(
        day=today,
        timezone=params.timezone,
        history_days=history_days,
        ready=history_days >= params.min_history_days,
        typical_hour=typical_hour,
        seasons=seasons,
    )


def _day_type(weekday: int) -> bool:
    return weekday in WEEKEND


def _season_expectations(by_season: Mapping[Season, list[Decimal]], min_samples: int) -> dict[Season, Decimal]:
    """Every one of the 168 seasons, from its own samples or, when too few, a pool."""
    pooled: dict[tuple[bool, int], list[Decimal]] = {}
    by_hour: dict[int, list[Decimal]] = {}
    for (weekday, hour), samples in by_season.items():
        pooled.setdefault((_day_type(weekday), hour), []).extend(samples)
        by_hour.setdefault(hour, []).extend(samples)
    expected: dict[Season, Decimal] = {}
    for weekday in range(7):
        for hour in range(24):
            own = by_season.get((weekday, hour), [])
            pool = pooled.get((_day_type(weekday), hour), [])
            if len(own) >= min_samples:
                expected[weekday, hour] = median(own)
            elif len(pool) >= min_samples:
                # Warming up: the pool is steadier, but blind to what makes this weekday
                # special (Monday's surge); the higher of the two flags neither.
                expected[weekday, hour] = max(median(pool), median(own)) if own else median(pool)
            elif by_hour.get(hour):
                expected[weekday, hour] = median(by_hour[hour])
            else:
                expected[weekday, hour] = ZERO  # no history at all: the floors decide
    return expected


def _season_spreads(
    by_season: Mapping[Season, list[Decimal]], expected: Mapping[Season, Decimal], min_samples: int
) -> dict[Season, Decimal]:
    """A robust sigma per (weekday-or-weekend, hour), shared by the seasons it pools.

    Residuals are leave-one-out: each sample against the median of the OTHER samples of
    its season. Against a median of four that includes it, two of four residuals are half
    a gap and the spread comes out at half the truth; the detector meets new hours, so
    the error that matters is the out-of-sample one."""
    residuals: dict[tuple[bool, int], list[Decimal]] = {}
    for (weekday, hour), samples in by_season.items():
        pool = residuals.setdefault((_day_type(weekday), hour), [])
        if len(samples) >= min_samples:
            pool.extend(cost - median(samples[:i] + samples[i + 1 :]) for i, cost in enumerate(samples))
        else:  # a pooled expectation: many samples, leaving one out changes nothing
            pool.extend(cost - expected[weekday, hour] for cost in samples)
    sigma = {key: _robust_sigma(values) for key, values in residuals.items()}
    return {(weekday, hour): sigma.get((_day_type(weekday), hour), ZERO) for weekday, hour in expected}


def recent_level(
    baseline: Baseline, hourly: Mapping[datetime, Decimal], now: datetime, params: AnomalyParams
) -> Decimal:
    """How busy the scope has been lately against its seasons: actual / expected over the
    ``level_hours`` complete hours before the previous one, between 1 and ``max_level``.

    A busy day (a launch, a campaign) lifts every hour of it; judged against an ordinary
    day's seasons its afternoon would page someone. Only upward, so a quiet day never
    makes the detector touchier than its baseline; capped, so a scope cannot drift into
    "normal" at ten times its spend; and the previous hour is left out, so a loop that
    began in it cannot raise the bar that should catch it. Needs the hours read to expect
    at least a typical hour's spend (at night, two cents against one would say nothing).
    """
    end = floor_hour(now) - HOUR
    actual, expected = ZERO, ZERO
    at = end - params.level_hours * HOUR
    while at < end:
        actual += hourly.get(at, ZERO)
        expected += baseline.seasons[baseline.season_of(at)].expected
        at += HOUR
    if expected <= 0 or expected < params.level_min_expected_usd:
        return ONE
    return min(max(actual / expected, ONE), params.max_level)
