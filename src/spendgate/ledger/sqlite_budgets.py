"""SQLite storage of budgets, rate limits and tag policies, and the ledger sums budgets are
measured against. A mixin of ``SQLiteStore`` (it uses its connection, lock and helpers)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.budgets.rules import Rules
from spendgate.ledger.events import format_ts
from spendgate.ledger.store import StoreError

BUDGETS_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    limit_usd TEXT NOT NULL,
    period TEXT NOT NULL,
    timezone TEXT NOT NULL,
    alert_at TEXT NOT NULL,
    soft INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_limits (
    scope TEXT PRIMARY KEY,
    rpm INTEGER,
    tpm INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
    environment TEXT PRIMARY KEY,
    dimensions TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Scope -> the ledger rows it covers. Tag scopes compare one key of the tags JSON.
_SCOPE_COLUMN = {
    "team": "team",
    "project": "project",
    "key": "key_name",
    "customer": "customer",
    "feature": "feature",
}


def scope_filter(scope: Scope) -> tuple[str, list[Any]]:
    if scope.kind == "org":
        return "1 = 1", []
    if scope.kind == "tag":
        tag_key, _, tag_value = (scope.value or "").partition("=")
        return "json_extract(tags, ?) = ?", [f'$."{tag_key}"', tag_value]
    return f"{_SCOPE_COLUMN[scope.kind]} = ?", [scope.value]


def _budget(row: Any) -> Budget:
    return Budget(
        name=row["name"],
        scope=Scope.parse(row["scope"]),
        limit_usd=Decimal(row["limit_usd"]),
        period=row["period"],
        timezone=row["timezone"],
        alert_at=tuple(int(v) for v in row["alert_at"].split(",") if v),
        soft=bool(row["soft"]),
    )


class SQLiteBudgetsMixin:
    """Budgets, limits, policies and budget spend for ``SQLiteStore``."""

    def _check_owner_exists(self, scope: Scope) -> None:
        # Teams, projects and keys are managed here, so a typo is caught now rather than
        # leaving a budget that never matches anything. Customers, features and tags are
        # free-form and can't be checked.
        table = {"team": "teams", "project": "projects", "key": "gateway_keys"}.get(scope.kind)
        if table and not self._query(f"SELECT 1 FROM {table} WHERE name = ?", (scope.value,)):
            raise StoreError(f"unknown {scope.kind} {scope.value!r}")

    def create_budget(self, budget: Budget) -> Budget:
        if self._query("SELECT 1 FROM budgets WHERE name = ?", (budget.name,)):
            raise StoreError(f"budget {budget.name!r} already exists")
        self._check_owner_exists(budget.scope)
        self._write(
            [
                (
                    "INSERT INTO budgets (name, scope, limit_usd, period, timezone, alert_at, soft, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        budget.name,
                        str(budget.scope),
                        str(budget.limit_usd),
                        budget.period,
                        budget.timezone,
                        ",".join(str(v) for v in budget.alert_at),
                        int(budget.soft),
                        _now(),
                    ),
                )
            ]
        )
        return budget

    def list_budgets(self) -> list[Budget]:
        return [_budget(r) for r in self._query("SELECT * FROM budgets ORDER BY name")]

    def delete_budget(self, name: str) -> None:
        if not self._query("SELECT 1 FROM budgets WHERE name = ?", (name,)):
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
                    (str(limit.scope), limit.rpm, limit.tpm, _now()),
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
        if not self._query("SELECT 1 FROM rate_limits WHERE scope = ?", (scope,)):
            raise StoreError(f"no limit on scope {scope!r}")
        self._write([("DELETE FROM rate_limits WHERE scope = ?", (scope,))])

    def create_policy(self, policy: Policy) -> Policy:
        self._write(
            [
                (
                    "INSERT INTO policies (environment, dimensions, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (environment) DO UPDATE SET dimensions = excluded.dimensions",
                    (policy.environment, ",".join(policy.dimensions), _now()),
                )
            ]
        )
        return policy

    def list_policies(self) -> list[Policy]:
        return [
            Policy(r["environment"], tuple(r["dimensions"].split(",")))
            for r in self._query("SELECT * FROM policies ORDER BY environment")
        ]

    def delete_policy(self, environment: str) -> None:
        if not self._query("SELECT 1 FROM policies WHERE environment = ?", (environment,)):
            raise StoreError(f"no policy for environment {environment!r}")
        self._write([("DELETE FROM policies WHERE environment = ?", (environment,))])

    def load_rules(self) -> Rules:
        budgets = tuple(self.list_budgets())
        limits = tuple(self.list_limits())
        policies = {p.environment: p for p in self.list_policies()}
        return Rules(budgets=budgets, limits=limits, policies=policies)

    def spend(self, scope: Scope, start: datetime | None, end: datetime | None, *, source: str = "auto") -> Decimal:
        """The ledger's exact spend in a scope over [start, end): what a budget has spent.
        From rollups and the partial hours at the edges (``source="events"``: all from raw
        events, for tests and benchmarks)."""
        if source != "events":
            return self._planned_spend(scope, start, end)  # type: ignore[attr-defined]
        where, params = scope_filter(scope)
        if start is not None:
            where += " AND ts >= ?"
            params.append(format_ts(start))
        if end is not None:
            where += " AND ts < ?"
            params.append(format_ts(end))
        row = self._query(f"SELECT decimal_sum(cost_usd) FROM usage_events WHERE {where}", params)[0]
        return Decimal(row[0]) if row[0] is not None else Decimal(0)  # no rows: no aggregate ran


def _now() -> str:
    return format_ts(datetime.now(UTC))
