"""The storage interface the rest of spendgate sees, and ``open_store`` to get one.

Small on purpose: the gateway only appends events and reads the directory; the CLI and
admin API manage teams, projects and keys and read reports. Behind it is ONE implementation
(``sql_store.SQLStore``) written over a dialect (``dialects/``): SQLite, embedded, or
PostgreSQL, for several gateway replicas.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from spendgate.access.visibility import Visibility
from spendgate.attribution.model import Directory, GatewayKey, Project, ScopeChange, Team
from spendgate.budgets.model import Scope
from spendgate.budgets.rules import Rules
from spendgate.finance.allocation import Rule
from spendgate.ledger.errors import StoreError
from spendgate.ledger.events import UsageEvent
from spendgate.reports.spec import ReportQuery, ReportResult, Where

__all__ = ["Store", "StoreError", "open_store"]


class Store(Protocol):
    def create_team(self, name: str, cost_center: str | None = None) -> Team: ...
    # ``names``/``projects``: only what a caller may see (None: everything); see access/.
    def list_teams(self, names: Collection[str] | None = None) -> list[Team]: ...
    def set_team_reference(self, name: str, reference: str | None) -> Team: ...
    def create_project(self, name: str, team: str) -> Project: ...
    def list_projects(self, names: Collection[str] | None = None) -> list[Project]: ...
    def project(self, name: str) -> Project | None: ...
    def create_key(self, key: GatewayKey) -> GatewayKey: ...
    def list_keys(self, projects: Collection[str] | None = None) -> list[GatewayKey]: ...
    def key(self, name: str) -> GatewayKey: ...
    def revoke_key(self, name: str) -> GatewayKey: ...
    def update_key_scope(self, name: str, change: ScopeChange) -> GatewayKey: ...

    def config_version(self) -> int:
        """A number that changes whenever teams, projects or keys change."""
        ...

    def load_directory(self) -> Directory: ...
    def load_rules(self) -> Rules: ...
    def spend(self, scope: Scope, start: datetime | None, end: datetime | None) -> Decimal:
        """The ledger's exact spend in a scope over [start, end)."""
        ...

    def append_events(self, events: Sequence[UsageEvent]) -> int:
        """Store events; an id already stored is ignored. Returns how many were new."""
        ...

    def append_new(self, events: Sequence[UsageEvent]) -> set[str]:
        """``append_events``, answering the ids stored (the others were there already)."""
        ...

    def proxied_spans(self, refs: Sequence[str]) -> set[str]:
        """The W3C span refs among ``refs`` that a proxied request carried (its traceparent)."""
        ...

    def link_spans(self, links: Sequence[tuple[str, str]], now: datetime) -> None: ...
    def ingest_progress(self, fingerprint: str, key_name: str) -> tuple[int, int] | None: ...
    def save_ingest_progress(
        self, fingerprint: str, key_name: str, path: str, offset: int, records: int, now: datetime
    ) -> None: ...
    def spend_written_elsewhere(self) -> None: ...

    def is_data_error(self, exc: BaseException) -> bool:
        """Whether ``append_events`` failed for what the events hold (a value the database
        cannot store), not because the database is unreachable, locked or full."""
        ...

    def report(self, query: ReportQuery) -> ReportResult: ...

    def prune(self, before: datetime) -> int:
        """Retention: delete raw events before ``before`` (rollups stay). Returns how many."""
        ...

    def raw_events_pruned_before(self) -> datetime | None:
        """The retention horizon: raw events before it were deleted; None if never pruned."""
        ...

    def list_events(
        self,
        limit: int = 50,
        *,
        visible: Visibility | None = None,
        where: Where = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]: ...
    def ledger_id(self) -> str:
        """This ledger's identity, made when the database was created and kept in it."""
        ...

    # Shared-cost allocation rules (finance/allocation.py), in creation order.
    def create_allocation_rule(self, rule: Rule) -> Rule: ...
    def list_allocation_rules(self) -> list[Rule]: ...
    def delete_allocation_rule(self, name: str) -> None: ...
    def focus_groups(self, since: date, until: date) -> list[dict[str, Any]]: ...
    # What the finance report and statements read (issue 12: anomalies, approvals, references).
    def anomalies_overlapping(self, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def approvals_decided(self, status: str, start: datetime, end: datetime) -> list[dict[str, Any]]: ...
    def customers(self, ids: list[str] | None = None) -> dict[str, Any]: ...
    def close(self) -> None: ...


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


def open_store(url: str) -> Store:
    """The store of a database URL."""
    if url.startswith("sqlite:"):
        from spendgate.ledger.store.dialects.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if is_postgres_url(url):
        try:
            from spendgate.ledger.store.dialects.postgresql import PostgresStore
        except ImportError as exc:  # psycopg is a dependency; this is a broken install
            raise StoreError(f"PostgreSQL support needs psycopg and psycopg-pool ({exc})") from exc

        return PostgresStore.from_url(url)
    raise StoreError(f"unsupported database URL {url!r}; use sqlite:///path.db or postgresql://user@host/db")
