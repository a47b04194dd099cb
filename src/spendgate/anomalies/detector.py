"""Is a scope's recent spend an anomaly? The same judgement live and over history (pure).

Live, the caller passes the scope's cost per minute (minute start -> USD; the current,
partial minute included, missing minutes $0) and ``now``; :func:`check_live` compares the
last 5, 15 and 60 minutes with what the baseline expects of exactly those minutes. A loop
spending 10x a scope's normal rate passes every floor within two to four minutes,
instead of waiting for the hour to close as an hourly check would.

A window's expectation is the baseline's hourly expectation pro rata of the time it
covers in each hour (a window can straddle two). Its spread is the hourly spread scaled
by sqrt(share of the hour), the scaling of a sum of independent requests: a short window
is relatively noisier than an hour.

Request costs are heavy-tailed (log-normal: the dearest request of a day is 20-50x the
median), and the tail is what pages people at 3 a.m. for nothing. So a window is judged
without its most expensive bucket (and that bucket's share of the expectation): one $2
request cannot make a quiet scope's five minutes an anomaly, while a loop, which is
sustained, loses one minute of five and stays one. On the synthetic histories this one
rule takes the false positives of 20 seeds x 3 scope sizes from 89 to 1
(``bench/anomaly_tuning.py``).

See ``params`` for the thresholds and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from spendgate.anomalies.baseline import HOUR, ZERO, Baseline, floor_hour
from spendgate.anomalies.params import AnomalyParams

MINUTE = timedelta(minutes=1)
_US = timedelta(microseconds=1)
_HOUR_US = HOUR // _US
# A score is a ratio of dollars; two decimals are all anyone reads.
SCORE_QUANTUM = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One window judged: its spend, what was expected, and whether it is an anomaly."""

    start: datetime
    end: datetime
    actual: Decimal  # the window's whole cost
    expected: Decimal  # what the baseline expected of the whole window
    trimmed: Decimal  # its most expensive bucket, left out of the judgement
    trimmed_expected: Decimal  # that bucket's share of the expectation
    spread: Decimal  # robust sigma of the judged part (the window less that bucket)
    score: Decimal  # robust z of the judged part
    flagged: bool

    @property
    def impact(self) -> Decimal:
        return self.actual - self.expected

    def ongoing(self, params: AnomalyParams) -> bool:
        """Still spending at an anomaly's rate: ``min_ratio_hour`` x the expectation, less
        the dearest bucket as always. An anomaly lasts while its shortest window says so;
        an hour-long window goes on flagging for up to an hour after a loop stops, because
        the loop is still in it."""
        judged = self.actual - self.trimmed
        return judged > 0 and judged >= (self.expected - self.trimmed_expected) * params.min_ratio_hour


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict at one instant: every window, and the one that matters most."""

    at: datetime
    ready: bool  # False: the scope lacks history, nothing can be flagged
    windows: tuple[WindowCheck, ...]  # shortest first

    @property
    def flagged(self) -> bool:
        return any(w.flagged for w in self.windows)

    @property
    def first_flagged(self) -> WindowCheck | None:
        """The shortest flagged window: the best guess at when the anomaly began."""
        return next((w for w in self.windows if w.flagged), None)

    @property
    def strongest(self) -> WindowCheck | None:
        """The flagged window with the highest score (else the highest-scoring window)."""
        pool = [w for w in self.windows if w.flagged] or list(self.windows)
        return max(pool, key=lambda w: w.score, default=None)


def floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _hours(span: timedelta) -> Decimal:
    return Decimal(span // _US) / _HOUR_US


def expectation_between(baseline: Baseline, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    """(expected USD, spread USD) of [start, end): each hour's share, pro rata of time.

    Expected shares add; variances add, each hour's scaled by its share (so a spread over
    a fraction f of an hour is the hourly spread x sqrt(f))."""
    expected, variance = _expectation(baseline, start, end)
    return expected, variance.sqrt()


def _expectation(baseline: Baseline, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
    expected, variance = ZERO, ZERO
    at = start
    while at < end:
        piece_end = min(floor_hour(at) + HOUR, end)
        share = _hours(piece_end - at)
        hour = baseline.for_hour(at)
        expected += hour.expected * share
        variance += hour.spread * hour.spread * share
        at = piece_end
    return expected, variance


def judge(
    actual: Decimal, expected: Decimal, spread: Decimal, min_impact: Decimal, min_ratio: Decimal, params: AnomalyParams
) -> tuple[Decimal, bool]:
    """(score, over every floor?) of spend ``actual`` where ``expected`` was expected."""
    impact = actual - expected
    score = (impact / spread).quantize(SCORE_QUANTUM)
    flagged = impact >= min_impact and actual >= expected * min_ratio and score >= params.min_score
    return score, flagged


def check_buckets(
    baseline: Baseline,
    costs: Mapping[datetime, Decimal],
    width: timedelta,
    now: datetime,
    lengths: Sequence[int],
    params: AnomalyParams,
) -> Check:
    """Judge the windows of ``lengths`` buckets (of ``width``: a minute or an hour)
    ending at ``now``.

    A window of K buckets covers the K buckets up to the one holding the instant before
    ``now`` (at a bucket boundary: the K complete buckets before it), from the first
    bucket's start to ``now``; its expectation is for exactly that time, so a check half a
    minute into a minute is not diluted.
    """
    last = floor_minute(now - _US) if width == MINUTE else floor_hour(now - _US)
    windows: list[WindowCheck] = []
    total, top, top_at = ZERO, ZERO, last
    at = last
    for count in range(1, max(lengths) + 1):
        cost = costs.get(at, ZERO)
        if cost:
            total += cost
            if cost > top:
                top, top_at = cost, at
        if count in lengths:
            windows.append(_judge_window(baseline, at, now, total, top, top_at, min(top_at + width, now), params))
        at -= width
    return Check(now, baseline.ready, tuple(windows))


def _judge_window(
    baseline: Baseline,
    start: datetime,
    end: datetime,
    actual: Decimal,
    top: Decimal,
    top_start: datetime,
    top_end: datetime,
    params: AnomalyParams,
) -> WindowCheck:
    expected, window_variance = _expectation(baseline, start, end)
    top_expected, top_variance = _expectation(baseline, top_start, top_end)
    # Variances add, so the judged part's is the window's less the left-out bucket's.
    variance = window_variance - top_variance
    judged_spread = max(variance.sqrt() if variance > 0 else ZERO, params.min_spread_usd)
    # The absolute floor, and the hourly one over the time judged (whichever is more).
    judged_hours = _hours(end - start - (top_end - top_start))
    min_impact = max(params.min_impact_usd, params.min_impact_usd_per_hour * judged_hours)
    # A short window is noisy: it must stand further out than an hour does.
    min_ratio = params.min_ratio_hour if end - start >= HOUR else params.min_ratio
    score, flagged = judge(actual - top, expected - top_expected, judged_spread, min_impact, min_ratio, params)
    return WindowCheck(
        start, end, actual, expected, top, top_expected, judged_spread, score, flagged and baseline.ready
    )


def check_live(
    baseline: Baseline, minute_costs: Mapping[datetime, Decimal], now: datetime, params: AnomalyParams
) -> Check:
    """Judge the last ``windows_minutes`` minutes (5, 15, 60) ending at ``now``.

    ``minute_costs`` maps minute starts (aware) to the scope's cost in that minute, the
    current minute so far included; missing minutes cost $0. Only the last hour is read.
    ``baseline`` should carry the scope's recent level (``Baseline.at_level``)."""
    return check_buckets(baseline, minute_costs, MINUTE, now, params.windows_minutes, params)


def check_hours(baseline: Baseline, hourly: Mapping[datetime, Decimal], now: datetime, params: AnomalyParams) -> Check:
    """Judge the last ``hourly_window_hours`` complete hours of the hourly rollup (a
    history scan's step where raw events are gone). As every window, less its dearest
    hour: rollups cannot tell one $3 request from a 30-minute loop, so without minutes
    an anomaly needs two hours of evidence."""
    return check_buckets(baseline, hourly, HOUR, now, (params.hourly_window_hours,), params)


def cost_between(costs: Mapping[datetime, Decimal], start: datetime, end: datetime, step: timedelta) -> Decimal:
    """Sum of the buckets of width ``step`` starting in [start, end) (start on the grid)."""
    total, at = ZERO, start
    while at < end:
        total += costs.get(at, ZERO)
        at += step
    return total


def minute_series(costs: Sequence[tuple[datetime, Decimal]]) -> dict[datetime, Decimal]:
    """Costs at any instants summed into minute buckets (what the live check reads)."""
    buckets: dict[datetime, Decimal] = {}
    for at, cost in costs:
        minute = floor_minute(at)
        buckets[minute] = buckets.get(minute, ZERO) + cost
    return buckets


def hourly_series(minute_costs: Mapping[datetime, Decimal]) -> dict[datetime, Decimal]:
    """Minute buckets summed into hour buckets (what the baseline reads)."""
    buckets: dict[datetime, Decimal] = {}
    for at, cost in minute_costs.items():
        hour = floor_hour(at)
        buckets[hour] = buckets.get(hour, ZERO) + cost
    return buckets
