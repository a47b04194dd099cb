"""False positives and detection delays of the anomaly detector, for a set of parameters.

On synthetic 45-day histories (``spendgate.anomalies.synthetic``) of three scope sizes and
N seeds, it counts the anomalies raised where there is none — a history scan of every
complete hour from day 8 (rollup resolution) and of every minute of the last 7 days
(what ``serve`` would have checked live) — then injects a runaway loop at six moments of
the last days and times the live check (every 30 s) until ``follow`` opens an anomaly, for a loop at 10x
the scope's expected rate for that hour and one at 10x its 30-day average hourly rate
(for an hour at most).

Run: python bench/anomaly_tuning.py [--seeds 20] [--set min_ratio=4 --set min_score=5]
(about 2 minutes for 20 seeds on this project's machine).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.anomalies.baseline import build_baseline, recent_level
from spendgate.anomalies.detector import check_live
from spendgate.anomalies.episodes import follow, scan
from spendgate.anomalies.params import AnomalyParams
from spendgate.anomalies.synthetic import ScopeShape, per_hour, per_minute, runaway_loop, synthetic_requests

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DAYS = 45
SHAPES = {
    "big ($19/h avg)": ScopeShape(peak_requests_per_hour=600),
    "default ($2.4/h avg)": ScopeShape(),
    "small ($0.6/h avg, few requests)": ScopeShape(peak_requests_per_hour=15, request_median_usd=0.1),
}
LOOP_STARTS = [
    START + timedelta(days=day, hours=hour, minutes=minute)
    for day, hour, minute in ((44, 10, 17), (44, 3, 33), (42, 9, 12), (42, 11, 40), (40, 14, 41), (43, 16, 5))
]


def parse_params(settings: list[str]) -> AnomalyParams:
    kinds = {f.name: f.type for f in fields(AnomalyParams)}
    values: dict[str, object] = {}
    for setting in settings:
        name, _, text = setting.partition("=")
        if name not in kinds:
            raise SystemExit(f"unknown parameter {name!r}: one of {', '.join(kinds)}")
        kind = str(kinds[name])
        values[name] = Decimal(text) if "Decimal" in kind else int(text) if kind == "int" else text
    return AnomalyParams(**values)  # type: ignore[arg-type]


def delay_of(baseline, minutes, start, params) -> int | None:  # type: ignore[no-untyped-def]
    """Seconds from the loop's start to the check at which ``follow`` opens an anomaly
    (what ``serve`` would alert on)."""
    for step in range(121):
        check = check_live(baseline, minutes, start + timedelta(seconds=30 * step), params)
        if follow(None, check, scope="s", costs=minutes, baseline=baseline, params=params) is not None:
            return 30 * step
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], help="a parameter: name=value")
    args = parser.parse_args()
    params = parse_params(args.set)
    print(params)
    false_positives: Counter[tuple[str, str]] = Counter()
    delays: dict[tuple[str, str, str], list[int | None]] = defaultdict(list)
    for shape_name, shape in SHAPES.items():
        for seed in range(args.seeds):
            requests = synthetic_requests(seed, START, DAYS, shape)
            hourly, minutes = per_hour(requests), per_minute(requests)
            end = START + timedelta(days=DAYS)
            false_positives[shape_name, "hours"] += len(scan("s", hourly, START + timedelta(days=7), end, params))
            since = end - timedelta(days=7)
            false_positives[shape_name, "minutes"] += len(scan("s", hourly, since, end, params, minute_costs=minutes))
            average = sum(hourly.get(end - timedelta(days=31, hours=-n), Decimal(0)) for n in range(720)) / 720
            for start in LOOP_STARTS:
                baseline = build_baseline(hourly, start, params)
                baseline = baseline.at_level(recent_level(baseline, hourly, start, params))
                for kind, rate in (("10x hour", baseline.for_hour(start).expected * 10), ("10x average", average * 10)):
                    if rate <= 0:
                        continue
                    looping = dict(minutes)
                    for at, cost in per_minute(runaway_loop(seed, start, 60, rate)).items():
                        looping[at] = looping.get(at, Decimal(0)) + cost
                    delay = delay_of(baseline, looping, start, params)
                    delays[shape_name, kind, start.strftime("%a %H:%M")].append(delay)
    print(f"\nfalse positives over {args.seeds} seeds (anomalies raised on histories without a loop):")
    for (shape_name, mode), count in false_positives.items():
        print(f"  {shape_name:34s} {mode:8s} {count}")
    print("\ndetection delay of a loop (seconds; 'late' = over 5 minutes, 'missed' = not within the hour):")
    for (shape_name, kind, when), values in delays.items():
        found = sorted(v for v in values if v is not None)
        late = sum(1 for v in values if v is None or v > 300)
        missed = sum(1 for v in values if v is None)
        median = found[len(found) // 2] if found else None
        print(
            f"  {shape_name:34s} {kind:12s} {when}  late {late:2d}/{len(values)}  missed {missed:2d}"
            f"  median {median}  max {found[-1] if found else None}"
        )


if __name__ == "__main__":
    main()
