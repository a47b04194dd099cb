"""``report --allocated``: the rules applied to the ledger's spend of a period (the queries;
the arithmetic is ``allocation.py``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgate.finance.allocation import OWNER_DIMENSIONS, Allocation, AllocationError, Rule, allocate, coverage_percent
from spendgate.ledger.store import Store
from spendgate.money import format_usd
from spendgate.reports.spec import ReportError, ReportQuery

LARGEST_POOLS = 5


@dataclass
class AllocatedReport:
    by: str
    allocation: Allocation
    applied: list[Rule]
    skipped: list[Rule]  # rules allocating at another level
    unallocated_pools: list[tuple[dict[str, Any], Decimal]]  # what the unowned spend is, largest first

    @property
    def coverage_percent(self) -> Decimal | None:
        return coverage_percent(self.allocation.direct)

    def rows(self) -> list[dict[str, Any]]:
        alloc = self.allocation
        owners = sorted(set(alloc.direct) | set(alloc.final), key=lambda o: (o is None, o or ""))
        rows = []
        for owner in owners:
            received = [m for m in alloc.moves if m.owner == owner]
            rows.append(
                {
                    self.by: owner,
                    "direct_cost_usd": format_usd(alloc.direct.get(owner, Decimal(0))),
                    "allocated_in_usd": format_usd(alloc.received(owner)),
                    "allocated_out_usd": format_usd(alloc.given(owner)),
                    "cost_usd": format_usd(alloc.final.get(owner, Decimal(0))),
                    "allocated_from": [
                        {"rule": m.rule, "pool": m.pool, "from": m.source, "cost_usd": format_usd(m.amount)}
                        for m in received
                    ],
                }
            )
        rows.sort(key=lambda r: (-Decimal(r["cost_usd"]), r[self.by] is None, r[self.by] or ""))
        return rows

    def as_json(self) -> dict[str, Any]:
        coverage = self.coverage_percent
        return {
            "by": [self.by],
            "allocated": True,
            "rules_applied": [r.name for r in self.applied],
            "rules_skipped": [{"rule": r.name, "by": r.by} for r in self.skipped],
            "rows": self.rows(),
            "total_cost_usd": format_usd(self.allocation.total),
            "allocation_coverage_percent": None if coverage is None else format_usd(coverage.quantize(Decimal("0.01"))),
            "largest_unallocated_pools": [
                {**dims, "cost_usd": format_usd(cost)} for dims, cost in self.unallocated_pools
            ],
        }


def allocated_report(store: Store, query: ReportQuery, rules: list[Rule] | None = None) -> AllocatedReport:
    """Spend per owner (``query.by``: one of team, project, cost_center) after the rules that
    allocate at that level, with the direct spend, the moves and the coverage."""
    if len(query.by) != 1 or query.by[0] not in OWNER_DIMENSIONS:
        raise ReportError(f"--allocated needs --by one of {', '.join(OWNER_DIMENSIONS)}")
    by = query.by[0]
    rules = store.list_allocation_rules() if rules is None else rules
    applied = [r for r in rules if r.by == by]
    direct = {row.dims[by]: row.cost_usd for row in store.report(query).rows}
    parts: dict[str, dict[str | None, Decimal]] = {}
    for rule in applied:
        if rule.pool.kind == "unallocated" or rule.pool.owner(by) is not None:
            continue  # taken from the holdings as they are when the rule runs
        pool_query = ReportQuery(
            by=(by,), since=query.since, until=query.until, where=_merge(query.where, rule.pool.where(by))
        )
        parts[rule.name] = {row.dims[by]: row.cost_usd for row in store.report(pool_query).rows}
    try:
        allocation = allocate(applied, direct, parts)
    except AllocationError as exc:
        raise ReportError(str(exc)) from None
    pools_query = ReportQuery(
        by=("source", "key"), since=query.since, until=query.until, where=_merge(query.where, ((by, (None,)),))
    )
    pools = [(row.dims, row.cost_usd) for row in store.report(pools_query).rows if row.cost_usd]
    pools.sort(key=lambda p: (-p[1], str(p[0])))
    return AllocatedReport(
        by=by,
        allocation=allocation,
        applied=applied,
        skipped=[r for r in rules if r.by != by],
        unallocated_pools=pools[:LARGEST_POOLS],
    )


def _merge(where: Any, extra: Any) -> Any:
    """Both ``Where`` filters at once (on a dimension both name: the values both allow)."""
    merged = dict(where)
    for dim, values in extra:
        merged[dim] = tuple(v for v in values if v in merged[dim]) if dim in merged else values
    return tuple(sorted(merged.items()))
