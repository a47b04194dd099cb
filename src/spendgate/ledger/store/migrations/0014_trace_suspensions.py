"""Trace suspensions lapse (issue 13): ``suspensions.expires_at``, set when an anomaly rule
suspends a runaway trace (``trace_suspension_hours`` later), NULL for every other scope (a
suspended key or feature stays suspended until someone resumes it).

A trace id is one agent run, never reused: keeping its suspension forever would only grow
every gateway's in-memory set. Python rather than SQL because the column is added only where
it is missing (a SQLite ledger that lost ``schema_migrations`` runs every step again).
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.store.migrate import existing_columns, portable


def upgrade(session: Any, dialect: Any) -> None:
    if "expires_at" not in existing_columns(session, dialect, "suspensions"):
        session.execute(portable("ALTER TABLE suspensions ADD COLUMN expires_at {timestamp}", dialect))
