"""The largest changes between two periods' spend (pure): what moved a team's week."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgate.money import format_usd

TOP_CHANGES = 3


@dataclass(frozen=True)
class Change:
    dimension: str  # project | model | feature
    value: str | None  # None: spend without that dimension
    cost: Decimal
    previous: Decimal

    @property
    def change(self) -> Decimal:
        return self.cost - self.previous

    def as_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "value": self.value,
            "cost_usd": format_usd(self.cost),
            "previous_cost_usd": format_usd(self.previous),
            "change_usd": format_usd(self.change),
        }


def top_changes(
    current: Mapping[tuple[str, str | None], Decimal],
    previous: Mapping[tuple[str, str | None], Decimal],
    limit: int = TOP_CHANGES,
) -> list[Change]:
    """The ``limit`` largest changes by absolute amount, over every (dimension, value) of either
    period; ties in a stable order (dimension, then value). Unchanged ones are not changes."""
    changes = [
        Change(dim, value, current.get((dim, value), Decimal(0)), previous.get((dim, value), Decimal(0)))
        for dim, value in set(current) | set(previous)
    ]
    moved = [c for c in changes if c.change]
    moved.sort(key=lambda c: (-abs(c.change), c.dimension, c.value is None, c.value or ""))
    return moved[:limit]
