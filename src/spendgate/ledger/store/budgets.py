"""Budgets, rate limits and tag policies, and the ledger sums budgets are measured against."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.budgets.rules import Rules, split_suspensions
from spendgate.ledger.errors import StoreError
from spendgate.ledger.rollups import plan
from spendgate.ledger.rollups.plan import EXACT, ZERO
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Dialect, Row
from spendgate.ledger.store.visibility import among

# Teams, projects and keys are managed here, so a scope naming one that does not exist is a
# typo caught now rather than a budget that never matches anything. Customers, features and
# tags are free-form and can't be checked.
_OWNER_TABLE = {"team": "teams", "project": "projects", "key": "gateway_keys"}


def scope_filter(scope: Scope, dialect: Dialect) -> tuple[str, list[Any]]:
    """A scope as a condition over usage_events. Tag scopes compare one key of the tags."""
    if scope.kind == "org":
        return "1 = 1", []
    if scope.kind == "tag":
        tag_key, _, tag_value = (scope.value or "").partition("=")
        sql, param = dialect.json_key("tags", tag_key)
        return f"{sql} = ?", [param, tag_value]
    return f"{plan.SCOPE_COLUMN[scope.kind]} = ?", [scope.value]


class BudgetsMixin(StoreBase):
    def _check_owner_exists(self, scope: Scope) -> None:
        table = _OWNER_TABLE.get(scope.kind)
        if table and not self._exists(table, scope.value or ""):
            raise StoreError(f"unknown {scope.kind} {scope.value!r}")

    def create_budget(self, budget: Budget) -> Budget:
        duplicate = f"budget {budget.name!r} already exists"
        if self._exists("budgets", budget.name):
            raise StoreError(duplicate)
        self._check_owner_exists(budget.scope)
        d = self._dialect
        self._write(
            [
                (
                    "INSERT INTO budgets (name, scope, limit_usd, period, timezone, alert_at, soft, created_at,"
                    " on_exhausted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        budget.name,
                        str(budget.scope),
                        d.money(budget.limit_usd),
                        budget.period,
                        budget.timezone,
                        d.int_list(budget.alert_at),
                        budget.soft,
                        self._now(),
                        budget.on_exhausted,
                    ),
                )
            ],
            duplicate=duplicate,
        )
        return budget

    def list_budgets(self, scopes: Collection[str] | None = None) -> list[Budget]:
        """Every budget, or (``scopes``: those a caller may see, as ``Viewer.budget_scopes``
        writes them) only the budgets on those scopes."""
        where, params = "", []
        if scopes is not None:
            condition, params = among("scope", scopes)
            where = f" WHERE {condition}"
        return [self._budget(r) for r in self._query(f"SELECT * FROM budgets{where} ORDER BY name", params)]

    def _budget(self, row: Row) -> Budget:
        return Budget(
            name=row["name"],
            scope=Scope.parse(row["scope"]),
            limit_usd=self._dialect.money_value(row["limit_usd"]),
            period=row["period"],
            timezone=row["timezone"],
            alert_at=self._dialect.int_list_value(row["alert_at"]),
            soft=bool(row["soft"]),
            on_exhausted=row["on_exhausted"],
        )

    def delete_budget(self, name: str) -> None:
        if not self._exists("budgets", name):
            raise StoreError(f"unknown budget {name!r}")
        self._write([("DELETE FROM budgets WHERE name = ?", (name,))])

    def create_limit(self, limit: RateLimit) -> RateLimit:
        # One limit per scope: setting it again replaces it, as a user would expect.
        self._check_owner_exists(limit.scope)
        self._write(
            [
                (
                    "INSERT INTO rate_limits (scope, rpm, tpm, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (scope) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm",
                    (str(limit.scope), limit.rpm, limit.tpm, self._now()),
                )
            ]
        )
        return limit

    def list_limits(self) -> list[RateLimit]:
        return [
            RateLimit(Scope.parse(r["scope"]), r["rpm"], r["tpm"])
            for r in self._query("SELECT * FROM rate_limits ORDER BY scope")
        ]

    def delete_limit(self, scope: str) -> None:
        if not self._exists("rate_limits", scope, column="scope"):
            raise StoreError(f"no limit on scope {scope!r}")
        self._write([("DELETE FROM rate_limits WHERE scope = ?", (scope,))])

    def create_policy(self, policy: Policy) -> Policy:
        self._write(
            [
                (
                    "INSERT INTO policies (environment, dimensions, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (environment) DO UPDATE SET dimensions = excluded.dimensions",
                    (policy.environment, self._dialect.text_list(policy.dimensions), self._now()),
                )
            ]
        )
        return policy

    def list_policies(self) -> list[Policy]:
        return [
            Policy(r["environment"], self._dialect.text_list_value(r["dimensions"]))
            for r in self._query("SELECT * FROM policies ORDER BY environment")
        ]

    def delete_policy(self, environment: str) -> None:
        if not self._exists("policies", environment, column="environment"):
            raise StoreError(f"no policy for environment {environment!r}")
        self._write([("DELETE FROM policies WHERE environment = ?", (environment,))])

    def load_rules(self) -> Rules:
        budgets = tuple(self.list_budgets())
        limits = tuple(self.list_limits())
        policies = {p.environment: p for p in self.list_policies()}
        found = self.load_suspensions()  # type: ignore[attr-defined]  # anomalies.py
        suspensions, trace_suspensions = split_suspensions(found)
        extras = self.approved_extras()  # type: ignore[attr-defined]  # approvals.py
        return Rules(
            budgets=budgets,
            limits=limits,
            policies=policies,
            suspensions=suspensions,
            trace_suspensions=trace_suspensions,
            extras=extras,
        )

    # --- spend ----------------------------------------------------------------------------------
    def spend(self, scope: Scope, start: datetime | None, end: datetime | None, *, source: str = "auto") -> Decimal:
        """The ledger's exact spend in a scope over [start, end): what a budget has spent.
        From rollups and the partial hours at the edges (``source="events"``: all from raw
        events, for tests and benchmarks)."""
        if source != "events":
            return self._planned_spend(scope, start, end)
        d = self._dialect
        where, params = scope_filter(scope, d)
        if start is not None:
            where += " AND ts >= ?"
            params.append(d.ts(start))
        if end is not None:
            where += " AND ts < ?"
            params.append(d.ts(end))
        rows = self._query(f"SELECT {d.money_sum('cost_usd')} FROM usage_events WHERE {where}", params)
        return d.money_value(rows[0][0])

    def _planned_spend(self, scope: Scope, start: datetime | None, end: datetime | None) -> Decimal:
        """Whole days from daily rollups, whole hours from hourly ones, the partial hours at
        the edges (and tag scopes) from raw events: one statement, so one snapshot."""
        d = self._dialect
        money = d.rollup_money
        column = plan.SCOPE_COLUMN.get(scope.kind)
        if scope.kind == "tag":
            pieces = [plan.Piece("events", start, end)] if start is None or end is None or start < end else []
        else:
            pieces = plan.spend_pieces(start, end)
        if not pieces:
            return ZERO
        parts: list[str] = []
        params: list[Any] = []
        for piece in pieces:
            if piece.source == "events":
                where, where_params = scope_filter(scope, d)
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        where += f" AND ts {op} ?"
                        where_params.append(d.ts(bound))
                parts.append(f"SELECT {money.of_raw('cost_usd')} FROM usage_events WHERE {where}")
                params += where_params
            else:
                rollup = plan.choose(piece.source, [column] if column else [])
                assert rollup is not None
                clauses: list[str] = []
                for op, bound in ((">=", piece.start), ("<", piece.end)):
                    if bound is not None:
                        clauses.append(f"r.bucket {op} ?")
                        params.append(d.bucket(rollup.grain, bound))
                if column:
                    clauses.append(f"r.dims_id IN (SELECT id FROM rollup_dims WHERE {column} = ?)")
                    params.append(scope.value)
                where = " WHERE " + " AND ".join(clauses) if clauses else ""
                parts.append(f"SELECT {money.sum_sql('r')} FROM {rollup.table} r{where}")
        total = ZERO
        for row in self._query(" UNION ALL ".join(parts), params):
            total = EXACT.add(total, money.decode(row))
        # The horizon is read after the sums: prune records it before deleting anything, so
        # if it does not cover the raw pieces now, nothing they summed had been deleted.
        plan.check_raw_spend(scope, start, pieces, self.raw_events_pruned_before())
        return total
