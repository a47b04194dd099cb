"""The enforcement rules in force: budgets, rate limits, tag policies (an immutable
snapshot, swapped whole on refresh like the key directory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from spendgate.attribution import Attribution
from spendgate.budgets.model import Budget, Policy, RateLimit, Scope


@dataclass(frozen=True, slots=True)
class Suspension:
    """A scope refused outright (403 scope_suspended) until someone resumes it."""

    scope: Scope
    anomaly_id: str | None = None  # the anomaly whose rule suspended it (None: by hand)
    # A trace's suspension lapses (``trace_suspension_hours``): a trace id is never reused,
    # so keeping it forever would only grow every gateway's memory.
    expires: datetime | None = None

    def lapsed(self, now: datetime | None) -> bool:
        return self.expires is not None and now is not None and now >= self.expires


def split_suspensions(found: Iterable[Suspension]) -> tuple[tuple[Suspension, ...], dict[str, Suspension]]:
    """(suspensions matched one by one, trace suspensions by trace id): a gateway may hold
    thousands of suspended traces, and a request's trace is then one dict lookup."""
    scopes: list[Suspension] = []
    traces: dict[str, Suspension] = {}
    for suspension in found:
        if suspension.scope.kind == "trace" and suspension.scope.value:
            traces[suspension.scope.value] = suspension
        else:
            scopes.append(suspension)
    return tuple(scopes), traces


@dataclass(frozen=True)
class Rules:
    budgets: tuple[Budget, ...] = ()
    limits: tuple[RateLimit, ...] = ()
    policies: dict[str, Policy] = field(default_factory=dict)  # by environment
    suspensions: tuple[Suspension, ...] = ()  # every kind but trace
    trace_suspensions: Mapping[str, Suspension] = field(default_factory=dict)  # by trace id
    # Extra spend approved for a budget window, by "budget@window" (store/approvals.py).
    extras: dict[str, Decimal] = field(default_factory=dict)

    def approved_extra(self, budget: Budget, window_key: str) -> Decimal:
        """Extra spend approved for this budget window (zero when none)."""
        return self.extras.get(f"{budget.name}@{window_key}", Decimal(0)) if self.extras else Decimal(0)

    def suspension_for(self, owner: Attribution, now: datetime | None = None) -> Suspension | None:
        # Usually empty: the request path pays one truthiness test (bench/bench_suspension.py).
        if self.trace_suspensions and owner.trace_id is not None:
            traced = self.trace_suspensions.get(owner.trace_id)
            # A lapsed one may linger until the next reload: it no longer refuses anything.
            if traced is not None and not traced.lapsed(now):
                return traced
        for suspension in self.suspensions:
            if suspension.scope.matches(owner):
                return suspension
        return None

    def budgets_for(self, owner: Attribution) -> list[Budget]:
        return [b for b in self.budgets if b.scope.matches(owner)]

    def limits_for(self, owner: Attribution) -> list[RateLimit]:
        return [limit for limit in self.limits if limit.scope.matches(owner)]

    def missing_dimensions(self, owner: Attribution) -> list[str]:
        policy = self.policies.get(owner.environment or "")
        return policy.missing(owner) if policy else []
