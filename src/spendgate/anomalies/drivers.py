"""What drove an anomaly: the dimension values whose spend rose most over their usual
share (pure).

For each dimension (model, key, feature, trace, …) a value's expected cost in the
anomaly's time is the scope's expected cost then times that value's usual share of the
scope's spend (from the baseline period); its excess is what it actually cost minus that.
Ranking by excess, not by cost, is the point: the key that always spends the most is not
news, the key whose spend went from 30% of normal to ten times normal is. A dimension
with no usual breakdown (``trace``: every agent run is a new trace) expects $0 of each
value, so the runaway trace's whole cost is excess.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from spendgate.anomalies.record import EXPECTED_QUANTUM, Driver


def rank_drivers(
    actual: Mapping[str, Mapping[str, Decimal]],
    usual: Mapping[str, Mapping[str, Decimal]],
    expected_total: Decimal,
    *,
    per_dimension: int = 3,
) -> tuple[Driver, ...]:
    """Drivers with a positive excess, at most ``per_dimension`` of each dimension, the
    largest excess first (ties: dimension as given, then value).

    ``actual[dimension][value]`` is the cost in the anomaly's time; ``usual`` the same
    breakdown over the baseline period (any length: only shares are used);
    ``expected_total`` what the baseline expected of the whole scope in that time.
    """
    ranked: list[tuple[Decimal, int, str, Driver]] = []
    for order, (dimension, costs) in enumerate(actual.items()):
        usual_costs = usual.get(dimension, {})
        usual_total = sum(usual_costs.values(), Decimal(0))
        drivers = []
        for value, cost in costs.items():
            share = usual_costs.get(value, Decimal(0)) / usual_total if usual_total > 0 else Decimal(0)
            expected = (expected_total * share).quantize(EXPECTED_QUANTUM, ROUND_HALF_EVEN)
            if cost > expected:
                drivers.append(Driver(dimension, value, cost, expected))
        drivers.sort(key=lambda d: (-d.excess_usd, d.value))
        ranked.extend((-d.excess_usd, order, d.value, d) for d in drivers[:per_dimension])
    ranked.sort(key=lambda item: item[:3])
    return tuple(item[3] for item in ranked)


def top_driver(drivers: tuple[Driver, ...], dimension: str) -> Driver | None:
    """The leading driver of one dimension (e.g. the key to suspend), if any rose."""
    return next((d for d in drivers if d.dimension == dimension), None)
