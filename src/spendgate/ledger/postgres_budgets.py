"""Budgets, rate limits and tag policies in PostgreSQL, and the ledger sums budgets are
measured against: the same behaviour as ``sqlite_budgets.py``. A mixin of ``PostgresStore``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.budgets.rules import Rules
from spendgate.ledger.postgres_events import utc
from spendgate.ledger.store import StoreError

# Scope -> the ledger rows it covers. Tag scopes compare one key of the tags object.
_SCOPE_COLUMN = {
    "team": "team",
    "project": "project",
    "key": "key_name",
    "customer": "customer",
    "feature": "feature",
}


def scope_filter(scope: Scope) -> tuple[str, list[Any]]:
    if scope.kind == "org":
        return "true", []
    if scope.kind == "tag":
        tag_key, _, tag_value = (scope.value or "").partition("=")
        return "(tags ->> %s::text) = %s", [tag_key, tag_value]
    return f"{_SCOPE_COLUMN[scope.kind]} = %s", [scope.value]


def _budget(row: dict[str, Any]) -> Budget:
    return Budget(
        name=row["name"],
        scope=Scope.parse(row["scope"]),
        limit_usd=row["limit_usd"],
        period=row["period"],
        timezone=row["timezone"],
        alert_at=tuple(row["alert_at"]),
        soft=row["soft"],
    )


class PostgresBudgetsMixin:
    if TYPE_CHECKING:

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
        def _write(
            self,
            statements: Sequence[tuple[str, Sequence[Any]]],
            *,
            duplicate: str | None = None,
            missing: str | None = None,
        ) -> None: ...

    def _check_owner_exists(self, scope: Scope) -> None:
        # Teams, projects and keys are managed here, so a typo is caught now rather than
        # leaving a budget that never matches anything. Customers, features and tags are
        # free-form and can't be checked.
        table = {"team": "teams", "project": "projects", "key": "gateway_keys"}.get(scope.kind)
        if table and not self._query(f"SELECT 1 FROM {table} WHERE name = %s", (scope.value,)):
            raise StoreError(f"unknown {scope.kind} {scope.value!r}")

    def create_budget(self, budget: Budget) -> Budget:
        duplicate = f"budget {budget.name!r} already exists"
        if self._query("SELECT 1 FROM budgets WHERE name = %s", (budget.name,)):
            raise StoreError(duplicate)
        self._check_owner_exists(budget.scope)
        self._write(
            [
                (
                    "INSERT INTO budgets (name, scope, limit_usd, period, timezone, alert_at, soft)"
                    " VALUES (%s, %s, %s, %s, %s, %s::integer[], %s)",
                    (
                        budget.name,
                        str(budget.scope),
                        budget.limit_usd,
                        budget.period,
                        budget.timezone,
                        list(budget.alert_at),
                        budget.soft,
                    ),
                )
            ],
            duplicate=duplicate,
        )
        return budget

    def list_budgets(self) -> list[Budget]:
        return [_budget(r) for r in self._query("SELECT * FROM budgets ORDER BY name")]

    def delete_budget(self, name: str) -> None:
        if not self._query("SELECT 1 FROM budgets WHERE name = %s", (name,)):
            raise StoreError(f"unknown budget {name!r}")
        self._write([("DELETE FROM budgets WHERE name = %s", (name,))])

    def create_limit(self, limit: RateLimit) -> RateLimit:
        # One limit per scope: setting it again replaces it, as a user would expect.
        self._check_owner_exists(limit.scope)
        self._write(
            [
                (
                    "INSERT INTO rate_limits (scope, rpm, tpm) VALUES (%s, %s, %s)"
                    " ON CONFLICT (scope) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm",
                    (str(limit.scope), limit.rpm, limit.tpm),
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
        if not self._query("SELECT 1 FROM rate_limits WHERE scope = %s", (scope,)):
            raise StoreError(f"no limit on scope {scope!r}")
        self._write([("DELETE FROM rate_limits WHERE scope = %s", (scope,))])

    def create_policy(self, policy: Policy) -> Policy:
        self._write(
            [
                (
                    "INSERT INTO policies (environment, dimensions) VALUES (%s, %s::text[])"
                    " ON CONFLICT (environment) DO UPDATE SET dimensions = excluded.dimensions",
                    (policy.environment, list(policy.dimensions)),
                )
            ]
        )
        return policy

    def list_policies(self) -> list[Policy]:
        return [
            Policy(r["environment"], tuple(r["dimensions"]))
            for r in self._query("SELECT * FROM policies ORDER BY environment")
        ]

    def delete_policy(self, environment: str) -> None:
        if not self._query("SELECT 1 FROM policies WHERE environment = %s", (environment,)):
            raise StoreError(f"no policy for environment {environment!r}")
        self._write([("DELETE FROM policies WHERE environment = %s", (environment,))])

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
            where += " AND ts >= %s"
            params.append(utc(start))
        if end is not None:
            where += " AND ts < %s"
            params.append(utc(end))
        row = self._query(f"SELECT coalesce(sum(cost_usd), 0) AS spent FROM usage_events WHERE {where}", params)[0]
        return row["spent"]
