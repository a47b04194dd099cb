"""Every knob of the anomaly detector in one frozen record, with its default and why.

A window of a scope's spend is an anomaly when ALL of these hold (AWS Cost Anomaly
Detection filters by absolute and percentage impact; Azure fences the residuals of a
seasonal fit; this does both, robustly):

1. the scope has ``min_history_days`` of history (before that nothing is raised);
2. impact = actual - expected >= ``min_impact_usd``, and >= ``min_impact_usd_per_hour``
   x the hours judged (the absolute floor: tiny scopes page nobody);
3. actual >= ``min_ratio`` x expected, ``min_ratio_hour`` for an hour-long window (the
   relative floor: a busy scope's ordinary swing is not news however many dollars it is);
4. score = impact / spread >= ``min_score`` (a robust z: the spread is a leave-one-out
   median absolute deviation, so past spikes do not widen it);

each judged without the window's most expensive minute (see ``detector``).

The figures below come from ``bench/anomaly_tuning.py``: 45-day synthetic histories
(``synthetic``: office hours, quiet weekends, a 1.8x Monday-morning surge, 12% day-to-day
level noise with a 1.6x busy day one day in twenty, Poisson arrivals, log-normal request
costs with sigma 1) of three scope sizes (~$19, ~$2.40 and ~$0.60 an hour on average)
and 20 seeds each; false positives are counted over every complete hour from day 8 and
every minute of the last week, detection delays by a live check every 30 s.

- ``lookback_days = 30``: four or five samples of every weekday-hour, the "rolling 30-day
  distribution of hourly cost" FinOps guides describe; longer remembers last quarter's
  traffic, shorter leaves a season two samples.
- ``min_history_days = 7``: one of each weekday. Before that a Monday has never been seen.
- ``min_season_samples = 4``: a weekday-hour's own median needs four samples (a month) to
  shrug off one past spike; with fewer, the hour takes the higher of its own median and
  that of every weekday (or weekend day) at that hour, so neither a Monday surge nor a
  weekly Tuesday-night job is flagged while the baseline warms up.
- ``windows_minutes = (5, 15, 60)``: the live check judges the last 5, 15 and 60 minutes.
  Five catches a loop at 10x a scope's rate in 1.5-4.5 minutes; an hour catches a rise
  of 3-4x that five noisy minutes cannot tell from a burst.
- ``hourly_window_hours = 2``: a scan over hourly rollups (raw events pruned) judges two
  hours less the dearer one, so one expensive request cannot make an anomaly of an hour.
- ``min_ratio = 5`` (+400%) for windows under an hour, ``min_ratio_hour = 3`` (+200%) for
  an hour: five minutes of a quiet scope hold a handful of requests, and three or four
  dear ones together reach 3-4x; a loop at 10x a scope's rate is 11x. With 3 for every
  window, false positives were 3 (one per scope size); with 4, 2; with 5, 1. An hour is
  steadier, and 3x sustained for one (a deploy that triples every prompt) is an incident.
  An anomaly lasts while its shortest window still spends ``min_ratio_hour`` x; an
  hour-long window would go on flagging for up to an hour after a loop stops.
- ``min_score = 4``: with the ratio floor doing most of the work, the robust z is there
  for scopes whose hours swing a lot (it is what keeps the ~$0.60/h scope at 1 false
  positive: 6 with ``min_score = 3``); 6 gives 0 everywhere but lets 5 of 20 loops at a
  weekday peak take over five minutes.
- ``min_impact_usd = 1`` and ``min_impact_usd_per_hour = 2``: a page is worth at least a
  dollar, and $2 for each hour it covers. A loop burning $1 in five minutes costs $288 a
  day; a slow drift of cents an hour over long windows is a budget matter, not an
  incident. A scope spending a few cents an hour is never flagged, whatever its ratio.
- ``level_hours = 6``, ``max_level = 2``, ``level_min_expected_usd = 0.25``: the
  expectation is scaled by how busy the scope has been in the six complete hours before
  the previous one (actual / expected, 1 to 2, when those hours expected at least 25
  cents). A busy day lifts every hour of it; without this term, false positives went
  from 1 to 3. Only upward, capped, and blind to the last hour, so it cannot hide a loop.
- ``spread_floor_ratio = 0.10``, ``typical_hour_floor = 0.05`` and ``min_spread_usd``: the
  spread is never below 10% of the hour's expectation nor 5% of the scope's typical
  hour (a cent at least), so a flat hour (a cron job) or one that never spends (3 a.m.)
  does not get an infinite score for its first cent.
- ``run_impact_multiple = 2``: a feature's or a customer's spend comes in runs (a trace
  serves one customer through one feature), so five minutes of a small customer can hold
  one dear run and nothing else, which trimming one minute does not remove. For those
  scopes the absolute floor is at least twice the 99th percentile of a trace's cost (the
  runaway-trace reference): an anomaly there is more than one unusual run could be (a
  single runaway run is the trace rule's, which flags it in minutes). On the 45-day
  history this takes the false positives of five customers from 16 to 0 (and of three
  features from 1 to 0); teams, projects and keys are judged as before.
- ``merge_gap_minutes = 30``: flagged windows closer than this are one anomaly, so a loop
  that pauses for a retry back-off is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class AnomalyParams:
    lookback_days: int = 30
    min_history_days: int = 7
    timezone: str = "UTC"  # seasons (weekday, hour of day) are read in this timezone
    min_season_samples: int = 4
    windows_minutes: tuple[int, ...] = (5, 15, 60)
    hourly_window_hours: int = 2
    level_hours: int = 6
    max_level: Decimal = Decimal(2)
    level_min_expected_usd: Decimal = Decimal("0.25")
    min_score: Decimal = Decimal(4)
    min_ratio: Decimal = Decimal(5)
    min_ratio_hour: Decimal = Decimal(3)
    min_impact_usd: Decimal = Decimal(1)
    min_impact_usd_per_hour: Decimal = Decimal(2)
    spread_floor_ratio: Decimal = Decimal("0.10")
    typical_hour_floor: Decimal = Decimal("0.05")
    min_spread_usd: Decimal = Decimal("0.01")
    merge_gap_minutes: int = 30
    run_impact_multiple: Decimal = Decimal(2)
    traces: TraceParams = field(default_factory=lambda: TraceParams())

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
        if self.max_level < 1 or self.min_ratio < 1 or self.min_ratio_hour < 1:
            raise ValueError("max_level, min_ratio and min_ratio_hour must be >= 1")
        if self.run_impact_multiple < 0:
            raise ValueError("run_impact_multiple must be >= 0")

    def for_runs(self, typical_run: Decimal | None) -> AnomalyParams:
        """These params for a scope whose spend comes in runs (feature, customer): the
        absolute floor raised to ``run_impact_multiple`` x ``typical_run`` (the 99th
        percentile of a trace's cost; None: unknown, the floor stays)."""
        if typical_run is None:
            return self
        return replace(self, min_impact_usd=max(self.min_impact_usd, self.run_impact_multiple * typical_run))


@dataclass(frozen=True, slots=True)
class TraceParams:
    """The runaway-trace rule's knobs (``anomalies.traces`` explains the rule).

    - ``min_cost_usd = 1``: a trace is never flagged below a dollar, as no window is
      (``min_impact_usd``): a stuck loop of cheap calls crosses it within minutes anyway.
    - ``cost_percentile = 99``, ``cost_multiple = 10``: a trace costing 10x what 99 traces
      in 100 of its feature stay under is runaway, whatever its pace. The 99th percentile
      shrugs off past runaways (up to 1% of the traces read) and 10x it is far beyond a
      log-normal tail: on the synthetic histories no normal trace comes near.
    - ``rate_per_minute = 10``, ``rate_minutes = 3``: a trace that sent at least 10 requests
      in each of 3 consecutive minutes AND already cost more than the 99th percentile is
      runaway: it is both fast and past anything usual. Agents that legitimately run fast
      are expensive too, which raises their feature's percentile with them.
    - ``min_reference_traces = 50``: a group (feature, else project, else every trace) needs
      fifty past traces for a percentile; with none that has them, ``no_reference_cost_usd``
      ($20) is the threshold and the rate branch needs only the dollar floor.
    - ``reference_days = 7``: the past traces read (up to ``max_reference_traces``, once a
      day): a week holds every weekday's kind of run.
    """

    min_cost_usd: Decimal = Decimal(1)
    cost_percentile: int = 99
    cost_multiple: Decimal = Decimal(10)
    rate_per_minute: int = 10
    rate_minutes: int = 3
    min_reference_traces: int = 50
    no_reference_cost_usd: Decimal = Decimal(20)
    reference_days: int = 7
    max_reference_traces: int = 200_000

    def __post_init__(self) -> None:
        if self.min_cost_usd <= 0 or self.no_reference_cost_usd < self.min_cost_usd:
            raise ValueError("min_cost_usd must be > 0 and no_reference_cost_usd >= min_cost_usd")
        if not 50 <= self.cost_percentile <= 100 or self.cost_multiple < 1:
            raise ValueError("cost_percentile must be 50..100 and cost_multiple >= 1")
        if self.rate_per_minute < 2 or not 1 <= self.rate_minutes <= 60:
            raise ValueError("rate_per_minute must be >= 2 and rate_minutes 1..60")
        if self.min_reference_traces < 1 or not 1 <= self.reference_days <= 90 or self.max_reference_traces < 1:
            raise ValueError("min_reference_traces >= 1, reference_days 1..90, max_reference_traces >= 1")
