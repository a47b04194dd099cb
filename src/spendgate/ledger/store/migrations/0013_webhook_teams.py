"""A webhook may belong to a team (``spendgate webhooks add URL --team NAME``): the team's
weekly spend summary goes to its webhooks. And ``finance_deliveries``: one row per scheduled
finance delivery (kind, period), so that of every replica of ``serve`` exactly one delivers
each period (the primary key settles the race), under a lease (``claimed_until``) a crashed
replica only holds until it runs out, with its attempts, next retry and last error.

Python rather than SQL because the column is added only when it is not there: a SQLite ledger
that lost ``schema_migrations`` runs every migration after 0003 again.
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.store.migrate import existing_columns, portable

_DELIVERIES = """CREATE TABLE IF NOT EXISTS finance_deliveries (
    kind {text} NOT NULL,
    period {text} NOT NULL,
    status {text} NOT NULL,
    attempts {bigint} NOT NULL DEFAULT 0,
    next_attempt_at {timestamp} NOT NULL,
    claimed_until {timestamp},
    last_error {text},
    delivered_at {timestamp},
    PRIMARY KEY (kind, period)
)"""


def upgrade(session: Any, dialect: Any) -> None:
    if "team" not in existing_columns(session, dialect, "webhooks"):
        session.execute(portable("ALTER TABLE webhooks ADD COLUMN team {text}", dialect))
    session.execute(portable(_DELIVERIES, dialect))
