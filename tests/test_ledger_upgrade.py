"""Ledgers made before the two stores were one open with today's code, upgrade in place and
keep every record; and a new migration is one file, applied to both databases.

The old ledgers are fixtures made by that code (tests/fixtures/: a SQLite ledger at schema
version 2, a PostgreSQL one at migration 0003), restored as they were, then opened.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spendgate.attribution import AttributionForbidden, attribute
from spendgate.budgets.model import Budget, Policy, RateLimit, Scope
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store import migrate as migrations
from spendgate.ledger.store.dialects.sqlite import SQLiteDialect, SQLiteStore
from spendgate.reports.spec import ReportQuery

FIXTURES = Path(__file__).parent / "fixtures"
HISTORY = ["0001", "0002", "0003"]  # what the old ledgers have


@pytest.fixture(params=["sqlite", "postgresql"])
def old_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Callable[..., Any]]]:
    """(backend, opener): a ledger restored from the old code's fixture, and how to open it
    (``opener()``: the store; ``opener(dialect=True)``: its bare dialect)."""
    if request.param == "sqlite":
        path = tmp_path / "old.db"
        with sqlite3.connect(path) as conn:
            conn.executescript((FIXTURES / "ledger_sqlite_schema2.sql").read_text())
        conn.close()
        yield "sqlite", lambda dialect=False: SQLiteDialect(path) if dialect else SQLiteStore(path)
    else:
        from spendgate.ledger.store.dialects.postgresql import PostgresDialect, PostgresStore

        url = request.getfixturevalue("postgres_db")()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((FIXTURES / "ledger_postgresql_0003.sql").read_text())  # type: ignore[arg-type]
        yield "postgresql", lambda dialect=False: PostgresDialect(url) if dialect else PostgresStore(url)


def test_an_old_ledger_opens_upgrades_and_keeps_every_record(old_ledger: tuple[str, Callable[..., Any]]) -> None:
    backend, opener = old_ledger
    store = opener()
    try:
        shipped = [m.version for m in migrations.available(backend)]
        assert store.schema_versions() == shipped  # the old history recorded, anything newer applied
        assert store.schema_versions()[:3] == HISTORY

        # the ledger, field by field
        events = {e["id"]: e for e in store.list_events()}
        assert sorted(events) == ["ev-01", "ev-02", "ev-03", "ev-04", "ev-05"]
        first = events["ev-01"]
        assert (first["ts"], first["cost_usd"], first["tags"], first["rates"]) == (
            "2025-03-10T09:30:00.000000Z",
            "0.004",
            {"agent": "copilot"},
            {"input": "2.5"},
        )
        assert (first["cost_center"], first["customer"], first["key"], first["latency_ms"]) == (
            "CC-1",
            "acme",
            "k1",
            12.5,
        )
        assert events["ev-02"]["cost_usd"] == "0.0000000000000000001"  # 19 decimals, exact
        assert events["ev-03"]["ts"] == "2025-03-11T23:59:59.999999Z" and events["ev-03"]["stream"] is True
        assert events["ev-03"]["tags"] == {"agent": "triage", "run": "007"}
        assert (events["ev-04"]["cost_usd"], events["ev-04"]["priced"], events["ev-04"]["estimated"]) == (
            None,
            False,
            True,
        )
        assert events["ev-05"]["status"] == "error" and events["ev-05"]["http_status"] == 500

        # the rollups the old code kept answer as the raw events do
        for by in [(), ("team",), ("project", "customer"), ("day",), ("month", "model"), ("key", "provider")]:
            rolled = store.report(ReportQuery(by=by), source="rollups")
            assert rolled == store.report(ReportQuery(by=by), source="events"), by
        total = store.report(ReportQuery())
        assert (total.total_cost_usd, total.total_requests) == (Decimal("1.5040000000000000001"), 5)
        month = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
        assert store.spend(Scope.parse("team:payments"), *month) == Decimal("0.0040000000000000001")

        # the configuration
        directory = store.load_directory()
        assert store.config_version() == directory.version > 0
        assert sorted(directory.teams) == ["discovery", "payments"]
        assert directory.teams["payments"].cost_center == "CC-1"
        assert directory.projects["search"].team == "discovery"
        k1, k2 = store.list_keys()
        assert (k1.name, k1.project, k1.locked, k1.revoked) == ("k1", "checkout", True, False)
        assert len(k1.key_hash) == 64 and directory.keys_by_hash[k1.key_hash].name == "k1"  # its hash, as stored
        assert (k2.name, k2.environment, k2.revoked) == ("k2", "staging", True)
        assert store.list_budgets() == [
            Budget(
                name="payments-month",
                scope=Scope.parse("team:payments"),
                limit_usd=Decimal("500.25"),
                period="month",
                timezone="America/New_York",
                alert_at=(50, 80, 100),
            )
        ]
        assert store.list_limits() == [RateLimit(Scope.parse("project:checkout"), rpm=60, tpm=200000)]
        assert store.list_policies() == [Policy("production", ("feature", "customer"))]
        [hook] = store.list_webhooks()
        assert (hook["url"], hook["has_secret"]) == ("https://hooks.example.com/spend", True)
        assert store.webhook(hook["id"])["secret"] == "s3cret"
        [alert] = store.list_alerts()
        assert (alert["id"], alert["window"], alert["threshold"], alert["created_at"]) == (
            "alrt_0001",
            "2025-03",
            50,
            "2025-03-20T12:00:00.000000Z",
        )
        assert list(alert["payload"]) == ["event", "id", "threshold", "spent_usd", "budget"]  # byte for byte
        assert [d["status"] for d in alert["deliveries"]] == ["pending"]

        # and it goes on working: new events land in the rollups the old code made
        new = UsageEvent(
            id="ev-06",
            ts=datetime(2025, 3, 10, 9, 50, tzinfo=UTC),
            provider="openai",
            model="gpt-4o",
            endpoint="/v1/chat/completions",
            stream=False,
            status="ok",
            http_status=200,
            project="checkout",
            team="payments",
            cost_center="CC-1",
            customer="acme",
            key="k1",
            cost_usd=Decimal("0.25"),
        )
        assert store.append_events([new, new]) == 1
        assert store.spend(Scope.parse("team:payments"), *month) == Decimal("0.2540000000000000001")
        by_customer = store.report(ReportQuery(by=("customer",)), source="rollups")
        assert by_customer == store.report(ReportQuery(by=("customer",)), source="events")
        assert store.migrate() == []  # nothing left to apply
    finally:
        store.close()


PORTABLE = """
-- one file for both databases: a column on the ledger and a table of its own
ALTER TABLE usage_events ADD COLUMN sample_tier {text};
CREATE TABLE ledger_notes (
    id {id},
    note {text} NOT NULL,
    amount {money},
    at {timestamp} NOT NULL,
    done {bool} NOT NULL
);
CREATE INDEX ledger_notes_at ON ledger_notes (at);
"""
PYTHON_STEP = """
from datetime import UTC, datetime
from decimal import Decimal


def upgrade(session, dialect):
    session.execute(
        "INSERT INTO ledger_notes (note, amount, at, done) VALUES (?, ?, ?, ?)",
        (
            dialect.name,
            dialect.money(Decimal("0.0000000000000000001")),
            dialect.ts(datetime(2025, 1, 2, tzinfo=UTC)),
            True,
        ),
    )
    session.execute("UPDATE usage_events SET sample_tier = 'default'")
"""


def test_a_new_migration_is_one_file_for_both_databases(
    old_ledger: tuple[str, Callable[..., Any]], tmp_path: Path
) -> None:
    backend, opener = old_ledger
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0100_sample_tier.sql").write_text(PORTABLE)
    (folder / "0101_first_note.py").write_text(PYTHON_STEP)
    folders = [*migrations.shipped(), folder]
    dialect = opener(dialect=True)
    try:
        with dialect.setup_session() as session:
            assert [m.version for m in migrations.pending(session, dialect, folders)][-2:] == ["0100", "0101"]
            applied = migrations.migrate(session, dialect, folders)
            assert applied[-2:] == ["0100", "0101"]
            assert migrations.migrate(session, dialect, folders) == []  # recorded: applied once
            note = session.one("SELECT note, amount, at, done FROM ledger_notes")
            assert note is not None
            assert (note[0], dialect.money_value(note[1]), dialect.ts_text(note[2]), bool(note[3])) == (
                backend,
                Decimal("0.0000000000000000001"),
                "2025-01-02T00:00:00.000000Z",
                True,
            )
            tiers = {row[0] for row in session.rows("SELECT sample_tier FROM usage_events")}
            assert tiers == {"default"}
    finally:
        dialect.close()
    store = opener()  # the store opens it, its own migrations all there, the data intact
    try:
        assert store.schema_versions()[-2:] == ["0100", "0101"]
        assert store.report(ReportQuery()).total_requests == 5
    finally:
        store.close()


def test_every_shipped_migration_exists_for_both_databases() -> None:
    for backend in ("sqlite", "postgresql"):
        versions = [m.version for m in migrations.available(backend)]
        assert versions == sorted(versions) and versions[:3] == HISTORY
        assert versions == [f"{i:04d}" for i in range(1, len(versions) + 1)]  # numbered with no gap


def test_an_old_ledgers_keys_get_scopes_that_keep_their_traffic(old_ledger: tuple[str, Callable[..., Any]]) -> None:
    """Migration 0004 (README "Attribution", upgrading): a key with a default project belongs to
    that project's team and keeps the projects of other teams it had already attributed spend
    to; a key without a project stays org-wide, as it was; anything else is refused."""
    _, opener = old_ledger
    dialect = opener(dialect=True)
    try:
        with dialect.setup_session() as session:  # two more keys, as the old code stored them
            created = dialect.ts(datetime(2025, 3, 1, tzinfo=UTC))
            for name, project in (("k3", None), ("k4", "search")):
                session.execute(
                    "INSERT INTO gateway_keys (name, key_hash, key_prefix, environment, project, locked, created_at)"
                    " VALUES (?, ?, 'sg-old…', 'production', ?, ?, ?)",
                    (name, hashlib.sha256(name.encode()).hexdigest(), project, False, created),
                )
            # k4 (default project search, team discovery) had named checkout (team payments):
            # the rollup dimensions the old code kept for such an event.
            session.execute(
                "INSERT INTO rollup_dims (dims_key, provider, model, project, team, cost_center, key_name)"
                " VALUES ('6:openai6:gpt-4o8:checkout8:payments4:CC-1-----2:k4', 'openai', 'gpt-4o', 'checkout',"
                " 'payments', 'CC-1', 'k4')"
            )
    finally:
        dialect.close()
    store = opener()
    try:
        keys = {k.name: k for k in store.list_keys()}
        scopes = {name: (k.team, sorted(k.allowed_projects), k.org_wide) for name, k in keys.items()}
        assert scopes == {
            "k1": ("payments", [], False),  # locked to checkout
            "k2": ("discovery", [], False),  # default project search, never named another team's
            "k3": (None, [], True),  # no project: org-wide, as before
            "k4": ("discovery", ["checkout"], False),  # search's team, and checkout, which it used
        }
        store.create_project("billing", "payments")  # a project it never named
        directory = store.load_directory()
        k3, k4 = keys["k3"], keys["k4"]
        assert attribute(k3, {"x-spendgate-project": "billing"}, directory).team == "payments"
        assert attribute(k3, {"x-spendgate-team": "discovery"}, directory).team == "discovery"
        assert attribute(k4, {"x-spendgate-project": "checkout"}, directory).project == "checkout"
        assert attribute(k4, {}, directory).project == "search"
        with pytest.raises(AttributionForbidden):
            attribute(k4, {"x-spendgate-project": "billing"}, directory)
        assert store.migrate() == []
    finally:
        store.close()
