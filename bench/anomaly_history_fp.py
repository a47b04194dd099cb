"""False positives of the detector on the end-to-end test's history (tests/test_anomalies_live.py).

    PYTHONPATH=. python bench/anomaly_history_fp.py [--seed 7] [--days 45]

The same synthetic history (seed, shape, start) the test writes through the store, judged
per watched scope (org and each key) two ways: as `serve` judges it live (a check at the end
of every minute, from day 8: ``episodes.scan`` with minute costs) and as `spendgate
anomalies scan` judges it from the hourly rollups. Every anomaly here is a false positive:
the history has no loop. Pure: no database (the test checks the wiring on both backends).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import timedelta

from tests.test_anomalies_live import NOW0, SHAPE, START

from spendgate.anomalies import synthetic as syn
from spendgate.anomalies.episodes import scan
from spendgate.anomalies.params import AnomalyParams


def main(seed: int, days: int) -> None:
    params = AnomalyParams()
    requests = [r for r in syn.synthetic_requests(seed, START, days + 1, SHAPE) if r.at < NOW0]
    scopes: dict[str, Callable[[syn.SyntheticRequest], bool]] = {"org": lambda r: True}
    for key in SHAPE.keys:
        scopes[f"key:{key}"] = lambda r, key=key: r.key == key
    since = START + timedelta(days=params.min_history_days + 1)
    print(f"{len(requests)} requests, {days} days, judged from {since:%Y-%m-%d} to {NOW0:%Y-%m-%d %H:%M}; {params}")
    for name, mine in scopes.items():
        own = [r for r in requests if mine(r)]
        hourly, minutes = syn.per_hour(own), syn.per_minute(own)
        began = time.perf_counter()
        live = scan(name, hourly, since, NOW0, params, minute_costs=minutes)
        by_hour = scan(name, hourly, since, NOW0, params)
        took = time.perf_counter() - began
        mean_hour = sum(hourly.values()) / (days * 24)
        print(
            f"{name:<18} ~${mean_hour:.2f}/h  live (every minute): {len(live)} false positives"
            f"  hourly scan: {len(by_hour)}  ({took:.1f} s)"
        )
        for anomaly in live + by_hour:
            print("   ", anomaly.to_json())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=45)
    args = parser.parse_args()
    main(args.seed, args.days)
