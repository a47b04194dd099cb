"""Spend anomalies (operational records, like alerts), the rules that watch a scope and may
suspend it, and the suspensions themselves (configuration: written with the config version
bumped, so every gateway reloads them with its directory and refuses the scope at once).

anomaly_scopes holds one row per scope ever flagged: a writer locks it (UPDATE) before
reading the scope's latest anomaly, so two replicas flagging the same spike at slightly
different instants serialize there, and the second extends the first one's anomaly
instead of recording (and sending) its own. UNIQUE (scope, start_at) backs that up.

Approval instead of a hard stop: a budget with on_exhausted = 'approve' answers an exhausted
window with a 402 carrying an approval request (one pending per budget window: the partial
unique index); an approver grants extra spend for that window with a reason.

Python rather than SQL because the budgets column is added only when it is not there: a SQLite
ledger that lost ``schema_migrations`` runs every migration after 0003 again.
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.store.migrate import existing_columns, portable

_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS anomalies (
    seq {id},
    id {text} NOT NULL UNIQUE,
    scope {text} NOT NULL,
    start_at {timestamp} NOT NULL,
    end_at {timestamp} NOT NULL,
    cost_usd {money} NOT NULL,
    expected_usd {money} NOT NULL,
    score {money} NOT NULL,
    drivers {json},
    status {text} NOT NULL DEFAULT 'open',
    source {text} NOT NULL,
    created_at {timestamp} NOT NULL,
    UNIQUE (scope, start_at)
)""",
    """CREATE INDEX IF NOT EXISTS anomalies_start ON anomalies (start_at)""",
    """CREATE TABLE IF NOT EXISTS anomaly_scopes (
    scope {text} PRIMARY KEY,
    touched {bigint} NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS anomaly_rules (
    scope {text} PRIMARY KEY,
    suspend {bool} NOT NULL,
    created_at {timestamp} NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS suspensions (
    scope {text} PRIMARY KEY,
    anomaly_id {text},
    created_at {timestamp} NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS approvals (
    id {text} PRIMARY KEY,
    budget {text} NOT NULL,
    window_key {text} NOT NULL,
    scope {text} NOT NULL,
    status {text} NOT NULL,
    extra_usd {money},
    reason {text},
    requested_at {timestamp} NOT NULL,
    decided_at {timestamp}
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS approvals_pending ON approvals (budget, window_key) WHERE status = 'pending'",
)


def upgrade(session: Any, dialect: Any) -> None:
    for statement in _STATEMENTS:
        session.execute(portable(statement, dialect))
    if "on_exhausted" not in existing_columns(session, dialect, "budgets"):
        column = "ALTER TABLE budgets ADD COLUMN on_exhausted {text} NOT NULL DEFAULT 'block'"
        session.execute(portable(column, dialect))
