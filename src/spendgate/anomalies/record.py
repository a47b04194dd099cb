"""An anomaly as recorded, and the only ways its status moves (pure).

``open`` (detected, nobody has looked) -> ``acknowledged`` (someone is on it) ->
``resolved`` (closed). Both may be resolved directly; acknowledging or resolving twice
is harmless (two people clicking at once). A resolved anomaly is closed for good: if the
scope spikes again, that is a new anomaly, so ``resolve`` is never undone by the
detector and a resolved record stays as the person left it.

An anomaly that is still going on keeps its status while its ``end``, cost and score grow
(``episodes.follow``): acknowledging a loop does not stop it being tracked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
# Expected costs are estimates; a micro-dollar is finer than anyone reads them.
EXPECTED_QUANTUM = Decimal("0.000001")


class AnomalyError(ValueError):
    """A status change the anomaly's current status does not allow."""


@dataclass(frozen=True, slots=True)
class Driver:
    """One dimension value's part in an anomaly: what it cost in the anomaly's time and
    what its usual share of the scope's spend would have cost."""

    dimension: str  # model, key, feature, trace, …
    value: str
    cost_usd: Decimal
    expected_usd: Decimal

    @property
    def excess_usd(self) -> Decimal:
        return self.cost_usd - self.expected_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "value": self.value,
            "cost_usd": format_usd(self.cost_usd),
            "expected_usd": format_usd(self.expected_usd),
            "excess_usd": format_usd(self.excess_usd),
        }


@dataclass(frozen=True, slots=True)
class Anomaly:
    scope: str  # as budgets write it: org, team:NAME, key:NAME, trace:ID, tag:K=V, …
    start: datetime
    end: datetime  # exclusive; grows while the anomaly goes on
    cost_usd: Decimal  # what [start, end) cost, exactly
    expected_usd: Decimal  # what the baseline expected of [start, end)
    score: Decimal  # the highest robust z of any window judged in it
    drivers: tuple[Driver, ...] = ()
    status: str = OPEN

    @property
    def impact_usd(self) -> Decimal:
        return self.cost_usd - self.expected_usd

    def acknowledge(self) -> Anomaly:
        if self.status == RESOLVED:
            raise AnomalyError("a resolved anomaly cannot be acknowledged (a new spike is a new anomaly)")
        return replace(self, status=ACKNOWLEDGED)

    def resolve(self) -> Anomaly:
        return replace(self, status=RESOLVED)

    def with_drivers(self, drivers: tuple[Driver, ...]) -> Anomaly:
        return replace(self, drivers=drivers)

    def to_json(self) -> dict[str, Any]:
        """As ``anomalies list --json`` and the ``spend.anomaly`` webhook show it (plus the
        store's ``id``): exact decimal strings, ISO-8601 UTC instants."""
        return {
            "scope": self.scope,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "cost_usd": format_usd(self.cost_usd),
            "expected_usd": format_usd(self.expected_usd),
            "impact_usd": format_usd(self.impact_usd),
            "score": str(self.score),  # quantized to 0.01 by the detector: plain digits
            "status": self.status,
            "drivers": [driver.to_json() for driver in self.drivers],
        }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
