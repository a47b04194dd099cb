"""Every knob of the anomaly detector in one frozen record, with its default and why.

A window of spend is an anomaly when ALL of these hold (as AWS Cost Anomaly Detection
filters by absolute and percentage impact, and Azure fences residuals from a seasonal fit):

1. the scope has ``min_history_days`` of history (below it nothing is raised: a scope one
   day old has no "normal" yet);
2. impact = actual - expected >= ``min_impact_usd`` (the absolute floor: tiny scopes page
   nobody);
3. actual >= ``min_ratio`` x expected (the relative floor: a busy scope's ordinary 40%
   swing is not news however many dollars it is);
4. score = impact / spread >= ``min_score`` (a robust z: the spread is a median absolute
   deviation, so past spikes do not widen it).

Defaults, and why (figures from ``tests/test_anomaly_detector.py`` on 45-day synthetic
histories with weekday and hour-of-day patterns, a Monday-morning surge, day-to-day level
noise and log-normal request costs):

- ``lookback_days = 30``: four or five samples of every weekday-hour, the "rolling 30-day
  distribution of hourly cost" FinOps guides describe; longer would remember last
  quarter's traffic, shorter would leave a season with two samples.
- ``min_history_days = 7``: one of each weekday. Before a week has passed a Monday has
  never been seen, so a Monday-morning surge would look like a spike.
- ``min_season_samples = 4``: a weekday-hour's own median needs four samples (a month) to
  shrug off one past spike (the median of four moves by half a gap, a mean by a quarter of
  the spike); with fewer the hour is pooled with every weekday (or weekend day) at that
  hour, whose median is steadier but blind to Monday's surge.
- ``windows_minutes = (5, 15, 60)``: the live check compares the last 5, 15 and 60 minutes
  (ending now) with what the baseline expects of the same minutes. Five minutes catches a
  10x loop within five minutes of its start; an hour catches a 3x rise that five minutes
  of noise would hide. A history scan over hourly rollups uses the hour only.
- ``min_score = 6``: the spread of a window shorter than an hour is the hourly spread
  scaled by sqrt(minutes/60), as if all hourly variation were request-count noise. That
  overstates a short window's spread (level swings do not shrink with the window), so
  six of these "sigmas" is strict; it still leaves a 10x loop scoring ~10-20 within five
  minutes. Five gave false positives on heavy-tailed (one expensive request) minutes.
- ``min_ratio = 3``: three times the expected spend (+200%). Monday mornings, month-end
  batches and growth of several percent a day stay under it; a loop at 10x a scope's
  hourly rate is 3-11x whatever the hour.
- ``min_impact_usd = 1``: a window must cost at least a dollar more than expected. A loop
  burning $1 in five minutes is $288 a day; a scope spending cents an hour never pages
  anyone, whatever its ratio.
- ``spread_floor_ratio = 0.10`` and ``typical_hour_floor = 0.05``: the spread is never
  below 10% of the hour's expectation nor 5% of the scope's typical hour, so a scope
  whose hours happen to be identical (a cron job) or that never spends at 3 a.m. does not
  get an infinite score for its first cent; ``min_spread_usd`` keeps it above zero for a
  scope whose typical hour is $0.
- ``merge_gap_minutes = 30``: flagged windows closer than this are one anomaly, so a loop
  that pauses for a retry back-off is not reported twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class AnomalyParams:
    lookback_days: int = 30
    min_history_days: int = 7
    timezone: str = "UTC"  # seasons (weekday, hour of day) are read in this timezone
    min_season_samples: int = 4
    windows_minutes: tuple[int, ...] = (5, 15, 60)
    hourly_window_hours: int = 2
    elevated_ratio: Decimal = Decimal(2)
    level_hours: int = 6
    max_level: Decimal = Decimal(2)
    level_min_expected_usd: Decimal = Decimal("0.25")
    min_score: Decimal = Decimal(4)
    min_ratio: Decimal = Decimal(5)
    min_impact_usd: Decimal = Decimal(1)
    min_impact_usd_per_hour: Decimal = Decimal(2)
    spread_floor_ratio: Decimal = Decimal("0.10")
    typical_hour_floor: Decimal = Decimal("0.05")
    min_spread_usd: Decimal = Decimal("0.01")
    merge_gap_minutes: int = 30

    def __post_init__(self) -> None:
        if self.lookback_days < 7 or not 1 <= self.min_history_days <= self.lookback_days:
            raise ValueError("lookback_days must be >= 7 and min_history_days within 1..lookback_days")
        # Two buckets at least: a window is judged without its dearest bucket.
        if not self.windows_minutes or any(not 2 <= w <= 60 for w in self.windows_minutes):
            raise ValueError("windows_minutes must be 2..60 minutes each")
        if not 2 <= self.hourly_window_hours <= 24:
            raise ValueError("hourly_window_hours must be 2..24")
        if self.min_season_samples < 1 or self.merge_gap_minutes < 0:
            raise ValueError("min_season_samples must be >= 1 and merge_gap_minutes >= 0")
        if self.min_spread_usd <= 0:
            raise ValueError("min_spread_usd must be > 0 (a zero spread makes every score infinite)")
