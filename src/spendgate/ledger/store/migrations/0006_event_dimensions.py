"""The service tier an event was served and priced at (standard, flex, priority, batch…;
spendgate/usage/service_tier.py), kept on the event and as a dimension of the hourly and daily
rollups (not of the lean one: rollups/plan.py), so reports group and filter by it from the
rollups. NULL: nobody named a tier, and every event stored before this migration; such an
event was priced at the standard rate, and reports show it as "standard" (README "Report
dimensions, filters and totals").

A ``rollup_dims`` key encodes the tuple of values it interns (rollups/plan.py ``dims_key``).
The hourly and daily rollups' tuples now end with the tier, so each of their stored keys gets a
NULL tier (``-``) at its end, as the writer now computes it; the lean rollup's tuples are
unchanged, so its keys are too. Which is which is told by recomputing the nine-value key from
the entry's columns (a lean key has eight values: it never equals it). The new keys have ten
values and every stored one eight or nine, so no update can meet another key.

Python, not SQL: the key encoding is not a function PostgreSQL has (0003 made a temporary one).
"""

from __future__ import annotations

from typing import Any

# The columns of a full key before this migration, in key order.
_BEFORE = ("provider", "model", "project", "team", "cost_center", "feature", "environment", "customer", "key_name")
_CHUNK = 5_000


def _key(values: Any) -> str:
    # rollups/plan.py dims_key as it was when this migration shipped (frozen here on purpose).
    return "".join("-" if v is None else f"{len(v)}:{v}" for v in values)


def upgrade(session: Any, dialect: Any) -> None:
    session.execute("ALTER TABLE usage_events ADD COLUMN service_tier text")
    session.execute("ALTER TABLE rollup_dims ADD COLUMN service_tier text")
    rows = session.rows(f"SELECT id, dims_key, {', '.join(_BEFORE)} FROM rollup_dims ORDER BY id")
    updates = [(row[1] + "-", row[0]) for row in rows if row[1] == _key(tuple(row)[2:])]
    for i in range(0, len(updates), _CHUNK):
        session.executemany("UPDATE rollup_dims SET dims_key = ? WHERE id = ?", updates[i : i + _CHUNK])
