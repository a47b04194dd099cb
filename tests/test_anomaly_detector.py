"""The anomaly detector on realistic synthetic histories (pure: no servers needed).

Each history is 45 days of one scope's requests (``anomalies.synthetic``: office hours,
quiet weekends, a Monday-morning surge, busy days, Poisson arrivals, log-normal request
costs), starting on Monday 2026-01-05. A runaway loop is added on top where a test needs
one: ~12 similar calls a minute, one key, one trace.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate.anomalies.baseline import Baseline, HourExpectation, build_baseline, recent_level
from spendgate.anomalies.detector import check_live, expectation_between, hourly_series, minute_series
from spendgate.anomalies.drivers import rank_drivers, top_driver
from spendgate.anomalies.episodes import follow, scan
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.record import ACKNOWLEDGED, OPEN, RESOLVED, Anomaly, AnomalyError
from spendgate.anomalies.synthetic import (
    ScopeShape,
    SyntheticRequest,
    breakdown,
    per_hour,
    per_minute,
    runaway_loop,
    synthetic_requests,
)

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DAYS = 45  # to Thursday 2026-02-19 00:00
SEEDS = range(20)
PARAMS = AnomalyParams()
SHAPE = ScopeShape()  # ~$2.40 an hour on average, ~$6.50 in a weekday's peak hour
# Loop starts on the last days, weekday office hours (the Monday ones in its surge).
LOOP_STARTS = (
    datetime(2026, 2, 16, 9, 12, tzinfo=UTC),  # Monday, surge
    datetime(2026, 2, 16, 11, 40, tzinfo=UTC),  # Monday, surge
    datetime(2026, 2, 17, 16, 5, tzinfo=UTC),  # Tuesday afternoon
    datetime(2026, 2, 18, 10, 17, tzinfo=UTC),  # Wednesday peak
)
FIVE_MINUTES = timedelta(minutes=5)


@dataclass(frozen=True)
class History:
    requests: list[SyntheticRequest]
    hourly: dict[datetime, Decimal]
    minutes: dict[datetime, Decimal]


def history(seed: int, shape: ScopeShape = SHAPE) -> History:
    requests = synthetic_requests(seed, START, DAYS, shape)
    return History(requests, per_hour(requests), per_minute(requests))


def plus(h: History, extra: list[SyntheticRequest]) -> History:
    """The same history with more requests in it."""
    hourly, minutes = dict(h.hourly), dict(h.minutes)
    for buckets, added in ((hourly, per_hour(extra)), (minutes, per_minute(extra))):
        for at, cost in added.items():
            buckets[at] = buckets.get(at, Decimal(0)) + cost
    return History(h.requests + extra, hourly, minutes)


@pytest.fixture(scope="module")
def histories() -> dict[int, History]:
    return {seed: history(seed) for seed in SEEDS}


def live_baseline(h: History, at: datetime, params: AnomalyParams = PARAMS) -> Baseline:
    """What ``serve`` would hold at ``at``: the day's baseline at the scope's recent level."""
    baseline = build_baseline(h.hourly, at, params)
    return baseline.at_level(recent_level(baseline, h.hourly, at, params))


def with_loop(h: History, loop: list[SyntheticRequest]) -> dict[datetime, Decimal]:
    minutes = dict(h.minutes)
    for at, cost in per_minute(loop).items():
        minutes[at] = minutes.get(at, Decimal(0)) + cost
    return minutes


def detection_delay(
    baseline: Baseline,
    minutes: dict[datetime, Decimal],
    start: datetime,
    params: AnomalyParams = PARAMS,
    horizon: timedelta = timedelta(minutes=20),
) -> timedelta | None:
    """Time from ``start`` to the first flagged live check, checking every 30 s."""
    for step in range(0, horizon // timedelta(seconds=30) + 1):
        now = start + timedelta(seconds=30 * step)
        if check_live(baseline, minutes, now, params).flagged:
            return now - start
    return None


# --- no false positives -------------------------------------------------------------------
def test_no_anomaly_on_history_without_a_loop(histories: dict[int, History]) -> None:
    # Every complete hour from day 8 on (rollup resolution), and every minute of the last
    # week (Thursday to Wednesday night) as serve would have checked them live.
    found = []
    for h in histories.values():
        found += scan("project:p", h.hourly, START + timedelta(days=7), START + timedelta(days=DAYS), PARAMS)
        since = START + timedelta(days=DAYS - 7)
        found += scan("project:p", h.hourly, since, START + timedelta(days=DAYS), PARAMS, minute_costs=h.minutes)
    assert found == []


def test_the_histories_are_noisy_enough_to_fool_a_looser_detector(histories: dict[int, History]) -> None:
    # The premise of the test above: the same histories do page a detector with AWS-like
    # "+100% and 3 sigma" floors, so zero is a property of the chosen floors.
    loose = AnomalyParams(min_ratio=Decimal(2), min_score=Decimal(3))
    found = []
    for seed in range(5):
        h = histories[seed]
        since = START + timedelta(days=DAYS - 3)
        found += scan("project:p", h.hourly, since, START + timedelta(days=DAYS), loose, minute_costs=h.minutes)
    assert found


def test_monday_mornings_are_not_flagged(histories: dict[int, History]) -> None:
    monday = datetime(2026, 2, 16, tzinfo=UTC)
    for h in histories.values():
        morning = sum(h.hourly.get(monday + timedelta(hours=n), Decimal(0)) for n in range(8, 12))
        sunday = sum(h.hourly.get(monday - timedelta(days=1) + timedelta(hours=n), Decimal(0)) for n in range(8, 12))
        assert morning >= 3 * sunday  # the ramp a "compare with yesterday" detector would flag
        found = scan(
            "project:p",
            h.hourly,
            monday + timedelta(hours=6),
            monday + timedelta(hours=13),
            PARAMS,
            minute_costs=h.minutes,
        )
        assert found == []


def test_the_first_mondays_are_not_flagged_while_the_baseline_warms_up(histories: dict[int, History]) -> None:
    # Mondays 2 to 4 have one to three Mondays behind them: too few for their own median.
    for h in histories.values():
        for week in (1, 2, 3):
            monday = START + timedelta(weeks=week)
            assert scan("project:p", h.hourly, monday, monday + timedelta(days=1), PARAMS) == []


def test_a_weekly_batch_job_is_not_an_anomaly(histories: dict[int, History]) -> None:
    # Every Tuesday 02:00-02:45, a job spends $15 where the night usually spends cents.
    job = [
        SyntheticRequest(tuesday + timedelta(minutes=m), Decimal("0.333333"), "batch", "gpt-4o", "report", f"job-{w}")
        for w, tuesday in enumerate(START + timedelta(days=1, weeks=n, hours=2) for n in range(7))
        for m in range(45)
    ]
    for seed in range(5):
        h = plus(histories[seed], job)
        wednesday_night = h.hourly.get(datetime(2026, 2, 11, 2, tzinfo=UTC), Decimal(0))
        assert h.hourly[datetime(2026, 2, 10, 2, tzinfo=UTC)] >= 10 * wednesday_night  # what a weekday pool expects
        assert scan("project:p", h.hourly, START + timedelta(days=7), START + timedelta(days=DAYS), PARAMS) == []
        # Live: its second Tuesday has one Tuesday behind it (warming up), its third two, its seventh six.
        for tuesday in (datetime(2026, 1, 13, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC), datetime(2026, 2, 17)):
            night = (tuesday.replace(tzinfo=UTC), tuesday.replace(tzinfo=UTC) + timedelta(hours=4))
            assert scan("project:p", h.hourly, *night, PARAMS, minute_costs=h.minutes) == []


def test_a_scope_growing_three_percent_a_day_is_not_an_anomaly() -> None:
    growing = ScopeShape(growth_per_day=0.03)  # x3.8 over the 45 days
    for seed in range(5):
        h = history(seed, growing)
        end = START + timedelta(days=DAYS)
        week = [end - timedelta(hours=n) for n in range(1, 7 * 24 + 1)]
        last_week = sum(h.hourly.get(at, Decimal(0)) for at in week)
        four_weeks_before = sum(h.hourly.get(at - timedelta(weeks=4), Decimal(0)) for at in week)
        assert last_week > Decimal("1.5") * four_weeks_before  # ~2.3x on average: the 30-day medians lag
        assert scan("project:p", h.hourly, START + timedelta(days=7), end, PARAMS) == []
        assert scan("project:p", h.hourly, end - timedelta(days=2), end, PARAMS, minute_costs=h.minutes) == []


def test_the_spread_is_the_error_on_a_new_day() -> None:
    # Four samples of each weekday-hour, normal around $100 with sigma $20: the spread must
    # be the error of predicting a fifth from the median of four (~1.16 sigma: $23), not the
    # residuals around a median that includes each sample (~0.71 sigma: $14).
    rng = random.Random(5)
    first = datetime(2026, 1, 5, tzinfo=UTC)
    hourly = {first + timedelta(hours=n): Decimal(round(rng.gauss(100, 20), 2)) for n in range(28 * 24)}
    baseline = build_baseline(hourly, first + timedelta(days=28), PARAMS)
    spreads = sorted(season.spread for season in baseline.seasons.values())
    assert Decimal(20) <= spreads[len(spreads) // 2] <= Decimal(27)


def test_a_window_expects_its_share_of_each_hour_and_a_sqrt_of_its_spread() -> None:
    seasons = {(w, h): HourExpectation(Decimal(6 + h), Decimal("1.2")) for w in range(7) for h in range(24)}
    baseline = Baseline(date(2026, 2, 18), "UTC", 30, True, Decimal(6), seasons)
    at = datetime(2026, 2, 18, 10, 45, tzinfo=UTC)
    # 15 minutes of 10:00 ($16/h), then 45 of 11:00 ($17/h).
    expected, spread = expectation_between(baseline, at, at + timedelta(hours=1))
    assert expected == Decimal(16) / 4 + Decimal(17) * 3 / 4
    assert spread == Decimal("1.2")  # a quarter and three quarters of the variance: a whole hour's
    assert expectation_between(baseline, at, at + timedelta(minutes=15))[1] == Decimal("0.6")  # 1.2 x sqrt(1/4)


# --- detection ----------------------------------------------------------------------------
def test_a_loop_at_ten_times_the_normal_rate_is_flagged_within_five_minutes(histories: dict[int, History]) -> None:
    for seed, h in histories.items():
        for start in LOOP_STARTS:
            baseline = live_baseline(h, start)
            rate = baseline.for_hour(start).expected * 10  # 10x what this scope spends at that hour
            minutes = with_loop(h, runaway_loop(seed, start, 60, rate))
            assert not check_live(baseline, minutes, start, PARAMS).flagged  # nothing before it starts
            delay = detection_delay(baseline, minutes, start)
            assert delay is not None and delay <= FIVE_MINUTES, (seed, start, delay)


def test_a_night_loop_at_ten_times_the_average_hourly_rate_is_flagged_within_five_minutes(
    histories: dict[int, History],
) -> None:
    start = datetime(2026, 2, 18, 3, 33, tzinfo=UTC)
    for seed, h in histories.items():
        average = sum(h.hourly.get(START + timedelta(days=14, hours=n), Decimal(0)) for n in range(30 * 24)) / 720
        baseline = live_baseline(h, start)
        minutes = with_loop(h, runaway_loop(seed, start, 60, average * 10))
        delay = detection_delay(baseline, minutes, start)
        assert delay is not None and delay <= FIVE_MINUTES, (seed, delay)


def test_a_sustained_rise_too_small_for_five_minutes_is_flagged_within_the_hour(
    histories: dict[int, History],
) -> None:
    # A deploy that makes every call 2.5x dearer: 3.5x the hour's spend, under the 5x that
    # short windows need, over the 3x an hour-long window needs.
    start = datetime(2026, 2, 17, 13, 0, tzinfo=UTC)
    for seed in range(5):
        h = histories[seed]
        baseline = live_baseline(h, start)
        minutes = with_loop(h, runaway_loop(seed, start, 90, baseline.for_hour(start).expected * Decimal("2.5")))
        delay = detection_delay(baseline, minutes, start, horizon=timedelta(hours=1))
        assert delay is not None and FIVE_MINUTES < delay <= timedelta(hours=1)


def test_tiny_scopes_are_not_flagged_below_the_floors() -> None:
    tiny = ScopeShape(peak_requests_per_hour=20, request_median_usd=0.002)  # ~ 4 cents an hour
    start = datetime(2026, 2, 18, 10, 17, tzinfo=UTC)
    no_floors = AnomalyParams(min_impact_usd=Decimal(0), min_impact_usd_per_hour=Decimal(0))
    for seed in range(5):
        h = history(seed, tiny)
        baseline = live_baseline(h, start)
        minutes = with_loop(h, runaway_loop(seed, start, 60, baseline.for_hour(start).expected * 10))
        flagged = [check_live(baseline, minutes, start + timedelta(minutes=m), PARAMS).flagged for m in range(61)]
        assert not any(flagged)
        # Only the floors hold it back: without them the same loop is caught at once.
        assert detection_delay(baseline, minutes, start, no_floors) is not None


def test_a_past_spike_does_not_hide_a_new_one(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 18, 10, 17, tzinfo=UTC)
    week_before = start - timedelta(weeks=1)
    for seed in range(5):
        clean = histories[seed]
        rate = live_baseline(clean, start).for_hour(start).expected * 10
        # Last Wednesday, the same hours: a three-hour loop at the same rate.
        spiked = plus(clean, runaway_loop(seed + 100, week_before - timedelta(minutes=17), 180, rate))
        expected_clean = build_baseline(clean.hourly, start, PARAMS).for_hour(start).expected
        expected_spiked = build_baseline(spiked.hourly, start, PARAMS).for_hour(start).expected
        samples = [spiked.hourly.get(start.replace(minute=0) - timedelta(weeks=w), Decimal(0)) for w in range(1, 5)]
        assert sum(samples) / 4 >= 3 * expected_clean  # a mean would have swallowed most of it
        assert expected_spiked <= expected_clean * Decimal("1.5")
        baseline = live_baseline(spiked, start)
        delay = detection_delay(baseline, with_loop(spiked, runaway_loop(seed, start, 60, rate)), start)
        assert delay is not None and delay <= FIVE_MINUTES


def test_nothing_is_flagged_before_the_minimum_history(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 18, 10, 17, tzinfo=UTC)
    h = histories[3]
    rate = live_baseline(h, start).for_hour(start).expected * 10
    minutes = with_loop(h, runaway_loop(3, start, 60, rate))
    for days, ready in ((5, False), (7, True)):
        baseline = build_baseline(h.hourly, start, PARAMS, history_start=start.date() - timedelta(days=days))
        assert baseline.ready is ready
        check = check_live(baseline, minutes, start + FIVE_MINUTES, PARAMS)
        assert check.flagged is ready
        assert any(w.score >= PARAMS.min_score for w in check.windows)  # not ready: scored, never flagged


def test_scopes_are_judged_in_their_own_timezone() -> None:
    # A scope busy 09:00-10:00 New York time on weekdays: in UTC that is 14:00 in winter.
    zone_params = AnomalyParams(timezone="America/New_York")
    hourly = {}
    day = datetime(2026, 1, 5, 14, tzinfo=UTC)
    for n in range(28):
        if (day + timedelta(days=n)).weekday() < 5:
            hourly[day + timedelta(days=n)] = Decimal(10)
    baseline = build_baseline(hourly, datetime(2026, 2, 2, 12, tzinfo=UTC), zone_params)
    assert baseline.seasons[0, 9].expected == 10  # Monday 09:00 in New York
    assert baseline.seasons[0, 14].expected == 0
    assert baseline.for_hour(datetime(2026, 2, 2, 14, 30, tzinfo=UTC)).expected == 10


# --- anomalies: one per incident, live and in a scan --------------------------------------
def test_a_loop_becomes_one_anomaly_live_and_in_a_scan(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 17, 14, 3, tzinfo=UTC)
    h = histories[7]
    baseline = live_baseline(h, start)
    loop = runaway_loop(7, start, 40, baseline.for_hour(start).expected * 10)
    minutes = with_loop(h, loop)
    loop_cost = sum((r.cost for r in loop), Decimal(0))

    # Live: a check every minute for two hours; the same anomaly grows, a new one never starts.
    current: Anomaly | None = None
    starts = set()
    for m in range(-10, 120):
        now = start + timedelta(minutes=m)
        check = check_live(baseline, minutes, now, PARAMS)
        current = follow(current, check, scope="key:support-bot", costs=minutes, baseline=baseline, params=PARAMS)
        if current is not None:
            starts.add(current.start)
            if m == 20:
                current = current.acknowledge()
    assert current is not None and len(starts) == 1
    assert start - FIVE_MINUTES <= current.start <= start + FIVE_MINUTES
    assert start + timedelta(minutes=35) <= current.end <= start + timedelta(minutes=45)
    assert current.cost_usd >= loop_cost and current.expected_usd < loop_cost / 5
    assert current.status == ACKNOWLEDGED  # still tracked after someone acknowledged it
    assert current.score >= PARAMS.min_score

    # A scan of the same day finds the same one anomaly.
    day = start.replace(hour=0, minute=0)
    found = scan("key:support-bot", h.hourly, day, day + timedelta(days=1), PARAMS, minute_costs=minutes)
    assert len(found) == 1
    assert abs(found[0].start - current.start) <= FIVE_MINUTES
    assert found[0].cost_usd >= loop_cost


def test_a_scan_over_hourly_rollups_merges_a_long_loop_into_one_anomaly(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 10, 13, 0, tzinfo=UTC)
    clean = histories[11]
    rate = build_baseline(clean.hourly, start, PARAMS).for_hour(start).expected * 10
    loop = runaway_loop(11, start, 240, rate)
    h = plus(clean, loop)
    found = scan("project:p", h.hourly, START + timedelta(days=7), START + timedelta(days=DAYS), PARAMS)
    assert len(found) == 1
    assert start <= found[0].start <= start + timedelta(hours=1)
    assert start + timedelta(hours=3) <= found[0].end <= start + timedelta(hours=4)
    assert found[0].cost_usd > found[0].expected_usd * PARAMS.min_ratio


def test_a_spike_after_the_merge_gap_or_after_resolve_is_a_new_anomaly(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 17, 14, 3, tzinfo=UTC)
    h = histories[5]
    baseline = live_baseline(h, start)
    rate = baseline.for_hour(start).expected * 10
    second = start + timedelta(minutes=20 + PARAMS.merge_gap_minutes + 10)
    minutes = with_loop(h, runaway_loop(5, start, 20, rate) + runaway_loop(6, second, 20, rate))
    day = start.replace(hour=0, minute=0)
    found = scan("project:p", h.hourly, day, day + timedelta(days=1), PARAMS, minute_costs=minutes)
    assert len(found) == 2

    # Live, resolving the first while the loop still runs makes the next flag a new anomaly.
    first = None
    for m in range(0, 8):
        check = check_live(baseline, minutes, start + timedelta(minutes=m), PARAMS)
        first = follow(first, check, scope="project:p", costs=minutes, baseline=baseline, params=PARAMS)
    assert first is not None
    check = check_live(baseline, minutes, start + timedelta(minutes=9), PARAMS)
    after = follow(first.resolve(), check, scope="project:p", costs=minutes, baseline=baseline, params=PARAMS)
    assert after is not None and after.status == OPEN and after.start > first.start


# --- what drove it ------------------------------------------------------------------------
def test_drivers_rank_the_looping_key_and_trace_first(histories: dict[int, History]) -> None:
    start = datetime(2026, 2, 18, 10, 17, tzinfo=UTC)
    for seed in range(5):
        clean = histories[seed]
        rate = live_baseline(clean, start).for_hour(start).expected * 10
        loop = runaway_loop(seed, start, 30, rate, key="batch", model="claude", feature="summarize")
        h = plus(clean, loop)
        end = start + timedelta(minutes=30)
        dimensions = ("key", "model", "feature", "trace")
        actual = breakdown(h.requests, start, end, dimensions)
        usual = breakdown(h.requests, start - timedelta(days=30), start.replace(hour=0, minute=0), dimensions)
        expected_total, _ = expectation_between(live_baseline(h, start), start, end)
        drivers = rank_drivers(actual, usual, expected_total)
        assert drivers[0].value in {"batch", "claude", "summarize", "trace-runaway"}  # all the loop's
        assert top_driver(drivers, "key").value == "batch"  # the smallest key on an ordinary day
        assert top_driver(drivers, "trace").value == "trace-runaway"
        assert top_driver(drivers, "model").value == "claude"
        assert top_driver(drivers, "feature").value == "summarize"


def test_drivers_rank_by_excess_over_the_usual_share_not_by_cost() -> None:
    actual = {"key": {"web": Decimal("85"), "batch": Decimal("15")}}
    usual = {"key": {"web": Decimal("800"), "batch": Decimal("50")}, "trace": {}}
    drivers = rank_drivers(actual, usual, Decimal("80"))
    # web costs most but stays near its share (80 x 800/850 = 75.29); batch is at 3x its 4.71.
    assert [d.value for d in drivers] == ["batch", "web"]
    assert drivers[0].expected_usd == Decimal("4.705882")
    assert drivers[0].excess_usd == Decimal("10.294118")
    # A dimension without a usual breakdown (traces) expects nothing: all of it is excess.
    traces = rank_drivers({"trace": {"t1": Decimal(3)}}, {}, Decimal(1))
    assert traces[0].excess_usd == 3


# --- the record -----------------------------------------------------------------------------
def test_status_moves_open_acknowledged_resolved_and_never_back() -> None:
    at = datetime(2026, 2, 18, 10, tzinfo=UTC)
    anomaly = Anomaly("key:k", at, at + FIVE_MINUTES, Decimal("3.5"), Decimal("0.5"), Decimal("12.5"))
    assert anomaly.status == OPEN
    acknowledged = anomaly.acknowledge()
    assert acknowledged.status == ACKNOWLEDGED and acknowledged.acknowledge().status == ACKNOWLEDGED
    resolved = acknowledged.resolve()
    assert resolved.status == RESOLVED and anomaly.resolve().status == RESOLVED
    with pytest.raises(AnomalyError):
        resolved.acknowledge()
    assert resolved.to_json() == {
        "scope": "key:k",
        "start": "2026-02-18T10:00:00Z",
        "end": "2026-02-18T10:05:00Z",
        "cost_usd": "3.5",
        "expected_usd": "0.5",
        "impact_usd": "3",
        "score": "12.5",
        "status": "resolved",
        "drivers": [],
    }


def test_params_refuse_what_cannot_work() -> None:
    for bad in (
        {"windows_minutes": (1, 5)},  # a window is judged less its dearest bucket
        {"min_history_days": 0},
        {"lookback_days": 5},
        {"min_spread_usd": Decimal(0)},
        {"hourly_window_hours": 1},
    ):
        with pytest.raises(ValueError):
            AnomalyParams(**bad)


def test_a_window_with_one_expensive_request_is_not_an_anomaly() -> None:
    # A flat $6/hour scope; one $3 request lands in a quiet minute.
    seasons = {(w, h): HourExpectation(Decimal(6), Decimal("1.2")) for w in range(7) for h in range(24)}
    baseline = Baseline(date(2026, 2, 18), "UTC", 30, True, Decimal(6), seasons)
    now = datetime(2026, 2, 18, 10, 5, tzinfo=UTC)
    minutes = {now - timedelta(minutes=m): Decimal("0.1") for m in range(1, 61)}
    minutes[now - timedelta(minutes=2)] = Decimal(3)
    check = check_live(baseline, minutes, now, PARAMS)
    assert not check.flagged
    assert check.windows[0].actual >= 5 * check.windows[0].expected  # 7x over five minutes, all one request
    # Three such minutes in five are a different story.
    for m in (1, 3):
        minutes[now - timedelta(minutes=m)] = Decimal(3)
    assert check_live(baseline, minutes, now, PARAMS).flagged


def test_costs_bucket_by_minute_and_by_hour() -> None:
    at = datetime(2026, 2, 18, 10, 59, 30, tzinfo=UTC)
    minutes = minute_series(
        [
            (at, Decimal("0.1")),
            (at + timedelta(seconds=20), Decimal("0.2")),
            (at.replace(hour=11, minute=0), Decimal(1)),
        ]
    )
    assert minutes == {at.replace(second=0): Decimal("0.3"), at.replace(hour=11, minute=0, second=0): Decimal(1)}
    assert hourly_series(minutes) == {
        at.replace(minute=0, second=0): Decimal("0.3"),
        at.replace(hour=11, minute=0, second=0): Decimal(1),
    }
