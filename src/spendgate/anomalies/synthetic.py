"""Synthetic spend histories, deterministic for a seed (tests, benchmarks, the demo).

One scope's requests over N days, shaped like an office's LLM traffic:

- an hour-of-day profile (quiet nights, a morning ramp, a lunch dip, busy office hours);
- weekends at a quarter of a weekday, and a Monday-morning surge (support agents working
  through the weekend's tickets: 1.8x from 08:00 to 11:59), which a detector comparing
  with the previous hours or day would flag;
- a day-to-day level that wanders (log-normal, sigma 12%) with an occasional busy day
  (5% of days at 1.6x);
- requests per minute drawn from a Poisson law, each priced log-normally (sigma 1: the
  dearest request in a day is ~20x the median, as long prompts and long answers are);
- each request owned by one of a few keys, models and features, in traces of ~3 calls,
  each trace for one customer (a long tail of them; drawn from a generator of its own, so
  adding customers changed no other draw of a seed's history).

``runaway_loop`` adds what an agent stuck in a loop sends: calls at a steady rate, all in
one trace on one key, until stopped. Costs are exact Decimals (whole micro-dollars).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate

MINUTE = timedelta(minutes=1)
_MICRO = Decimal("0.000001")

# Share of the peak request rate by hour of day (local time).
OFFICE_HOURS = (
    0.05, 0.04, 0.04, 0.04, 0.05, 0.08, 0.15, 0.35, 0.70, 1.00, 1.00, 1.00,
    0.80, 1.00, 1.00, 1.00, 0.90, 0.70, 0.45, 0.30, 0.22, 0.15, 0.10, 0.07,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScopeShape:
    peak_requests_per_hour: float = 90.0
    request_median_usd: float = 0.04
    request_sigma: float = 1.0
    hour_profile: tuple[float, ...] = OFFICE_HOURS
    weekend_factor: float = 0.25
    monday_morning_factor: float = 1.8  # Monday 08:00-11:59
    daily_level_sigma: float = 0.12
    busy_day_chance: float = 0.05
    busy_day_factor: float = 1.6
    growth_per_day: float = 0.0  # compound: 0.03 is +3% a day
    keys: Mapping[str, float] = field(default_factory=lambda: {"web": 5.0, "support-bot": 3.0, "batch": 2.0})
    models: Mapping[str, float] = field(default_factory=lambda: {"gpt-4o": 4.0, "gpt-4o-mini": 3.0, "claude": 3.0})
    features: Mapping[str, float] = field(default_factory=lambda: {"chat": 5.0, "triage": 3.0, "summarize": 2.0})
    customers: Mapping[str, float] = field(
        default_factory=lambda: {"acme": 6.0, "globex": 3.0, "initech": 2.0, "umbrella": 1.0, "hooli": 0.5}
    )


@dataclass(frozen=True, slots=True)
class SyntheticRequest:
    at: datetime
    cost: Decimal
    key: str
    model: str
    feature: str
    trace: str
    customer: str = ""


class _Picker:
    """Weighted choice by one uniform draw (random.choices rebuilds its table each call)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.names = list(weights)
        self.cumulative = list(accumulate(weights.values()))

    def pick(self, rng: random.Random) -> str:
        return self.names[bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the few requests a minute these scopes see.
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _usd(value: float) -> Decimal:
    return Decimal(max(round(value * 1_000_000), 1)) * _MICRO


def _day_level(rng: random.Random, shape: ScopeShape, day_index: int) -> float:
    level = rng.lognormvariate(0.0, shape.daily_level_sigma)
    if rng.random() < shape.busy_day_chance:
        level *= shape.busy_day_factor
    return level * (1 + shape.growth_per_day) ** day_index


def hourly_rate(shape: ScopeShape, at: datetime) -> float:
    """Mean requests per hour at ``at`` (local time of ``at``), before the day's level."""
    rate = shape.peak_requests_per_hour * shape.hour_profile[at.hour]
    if at.weekday() >= 5:
        rate *= shape.weekend_factor
    elif at.weekday() == 0 and 8 <= at.hour < 12:
        rate *= shape.monday_morning_factor
    return rate


def synthetic_requests(seed: int, start: datetime, days: int, shape: ScopeShape) -> list[SyntheticRequest]:
    """``days`` days of requests from ``start`` (a local midnight), in time order."""
    rng = random.Random(seed)
    keys, models, features = _Picker(shape.keys), _Picker(shape.models), _Picker(shape.features)
    customers = _Picker(shape.customers) if shape.customers else None
    customer_rng = random.Random(f"{seed}:customers")
    customer = ""
    mu = math.log(shape.request_median_usd)
    requests: list[SyntheticRequest] = []
    trace_number, trace_left = 0, 0
    for day_index in range(days):
        level = _day_level(rng, shape, day_index)
        day_start = start + timedelta(days=day_index)
        for minute_index in range(24 * 60):
            at = day_start + minute_index * MINUTE
            for _ in range(_poisson(rng, hourly_rate(shape, at) * level / 60)):
                if trace_left == 0:
                    trace_number, trace_left = trace_number + 1, 1 + int(rng.random() * 5)
                    customer = customers.pick(customer_rng) if customers else ""
                trace_left -= 1
                requests.append(
                    SyntheticRequest(
                        at=at + timedelta(seconds=int(rng.random() * 60)),
                        cost=_usd(rng.lognormvariate(mu, shape.request_sigma)),
                        key=keys.pick(rng),
                        model=models.pick(rng),
                        feature=features.pick(rng),
                        trace=f"trace-{seed}-{trace_number}",
                        customer=customer,
                    )
                )
    return requests


def runaway_loop(
    seed: int,
    start: datetime,
    minutes: int,
    usd_per_hour: Decimal,
    *,
    key: str = "support-bot",
    model: str = "gpt-4o",
    feature: str = "triage",
    trace: str = "trace-runaway",
) -> list[SyntheticRequest]:
    """An agent stuck in a loop: ~12 similar calls a minute (sigma 0.3) worth
    ``usd_per_hour``, from ``start`` for ``minutes`` minutes, in one trace."""
    rng = random.Random(seed)
    calls_per_minute = 12
    median_call = float(usd_per_hour) / 60 / calls_per_minute / math.exp(0.3**2 / 2)
    mu = math.log(median_call)
    return [
        SyntheticRequest(
            start + m * MINUTE + timedelta(seconds=5 * c), _usd(rng.lognormvariate(mu, 0.3)), key, model, feature, trace
        )
        for m in range(minutes)
        for c in range(calls_per_minute)
    ]


def per_minute(requests: Iterable[SyntheticRequest]) -> dict[datetime, Decimal]:
    buckets: dict[datetime, Decimal] = {}
    for request in requests:
        minute = request.at.replace(second=0, microsecond=0)
        buckets[minute] = buckets.get(minute, Decimal(0)) + request.cost
    return buckets


def per_hour(requests: Iterable[SyntheticRequest]) -> dict[datetime, Decimal]:
    buckets: dict[datetime, Decimal] = {}
    for request in requests:
        hour = request.at.replace(minute=0, second=0, microsecond=0)
        buckets[hour] = buckets.get(hour, Decimal(0)) + request.cost
    return buckets


def breakdown(
    requests: Sequence[SyntheticRequest], start: datetime, end: datetime, dimensions: Sequence[str]
) -> dict[str, dict[str, Decimal]]:
    """Cost in [start, end) by each dimension's values: {"key": {"web": …}, "trace": …}."""
    result: dict[str, dict[str, Decimal]] = {dimension: {} for dimension in dimensions}
    for request in requests:
        if start <= request.at < end:
            for dimension in dimensions:
                value = getattr(request, dimension)
                result[dimension][value] = result[dimension].get(value, Decimal(0)) + request.cost
    return result
