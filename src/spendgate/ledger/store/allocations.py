"""Shared-cost allocation rules (``allocation_rules`` table), in creation order."""

from __future__ import annotations

from decimal import Decimal

from spendgate.finance.allocation import Pool, Rule
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.base import StoreBase


class AllocationsMixin(StoreBase):
    def create_allocation_rule(self, rule: Rule) -> Rule:
        duplicate = f"allocation rule {rule.name!r} already exists"
        if self._exists("allocation_rules", rule.name):
            raise StoreError(duplicate)
        targets = {owner: str(pct) for owner, pct in rule.targets.items()}
        self._write(
            [
                (
                    "INSERT INTO allocation_rules (name, pool, method, by_dimension, targets, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (rule.name, str(rule.pool), rule.method, rule.by, self._dialect.json(targets), self._now()),
                )
            ],
            duplicate=duplicate,
        )
        return rule

    def list_allocation_rules(self) -> list[Rule]:
        rows = self._query("SELECT * FROM allocation_rules ORDER BY created_at, name")
        rules = []
        for row in rows:
            targets = self._dialect.json_value(row["targets"])
            rules.append(
                Rule(
                    name=row["name"],
                    pool=Pool.parse(row["pool"]),
                    method=row["method"],
                    by=row["by_dimension"],
                    targets={owner: Decimal(pct) for owner, pct in (targets or {}).items()},
                )
            )
        return rules

    def delete_allocation_rule(self, name: str) -> None:
        if not self._exists("allocation_rules", name):
            raise StoreError(f"unknown allocation rule {name!r}")
        self._write([("DELETE FROM allocation_rules WHERE name = ?", (name,))])
