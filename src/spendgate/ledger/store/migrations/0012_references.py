"""Reference fields for statements and the finance report: a team's purchase-order or billing
reference, a customers table (a customer was only a dimension value: its id on events; this
gives it a name and a reference), and who decided an approval.

Python rather than SQL because the columns are added only when they are not there: a SQLite
ledger that lost ``schema_migrations`` runs every migration after 0003 again, and ``ALTER TABLE
… ADD COLUMN`` has no ``IF NOT EXISTS`` on SQLite.
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.store.migrate import existing_columns, portable

_CUSTOMERS = """CREATE TABLE IF NOT EXISTS customers (
    id {text} PRIMARY KEY,
    name {text},
    reference {text},
    created_at {timestamp} NOT NULL,
    updated_at {timestamp} NOT NULL
)"""

_COLUMNS = (("teams", "reference"), ("approvals", "decided_by"))


def upgrade(session: Any, dialect: Any) -> None:
    session.execute(portable(_CUSTOMERS, dialect))
    for table, column in _COLUMNS:
        if column not in existing_columns(session, dialect, table):
            session.execute(portable(f"ALTER TABLE {table} ADD COLUMN {column} {{text}}", dialect))
