"""Adding a batch of newly stored events to the rollups, inside the transaction that stores
them (so a rollup is always the exact sum of the events it covers).

The batch is summed in Python (``plan.aggregate``: a few thousand groups for a batch of
2,000 events), each group's dimension values are interned in ``rollup_dims``, and each
rollup gets one bulk upsert adding the groups to its rows.

Several gateway replicas add to the same rows (the current hour's, mostly), so every write
takes its row locks in one global order: dimension entries by key, then each rollup's rows by
(bucket, dims id). Two batches touching the same rows then queue rather than deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spendgate.ledger.rollups import plan
from spendgate.ledger.rollups.plan import MEASURES, Groups, Rollup
from spendgate.ledger.store.dialect import BIGINT, DAY, HOUR, TEXT, Column, Dialect, Session

Dims = tuple[str | None, ...]

_CUSTOMER = plan.COLUMNS.index("customer")
assert plan.DAILY_LEAN.columns == plan.COLUMNS[:_CUSTOMER] + plan.COLUMNS[_CUSTOMER + 1 :]
_DIMS_COLUMNS: list[Column] = [("dims_key", TEXT), *((c, TEXT) for c in plan.COLUMNS)]
_DIMS_CACHE_LIMIT = 200_000
_LOOKUP_CHUNK = 500  # dims keys per SELECT … IN (…)


def _full(dims: Dims) -> Dims:
    """A lean rollup's dimension values with ``customer`` (NULL) put back in its place."""
    return dims if len(dims) == len(plan.COLUMNS) else (*dims[:_CUSTOMER], None, *dims[_CUSTOMER:])


class RollupWriter:
    """Interns dimension values and upserts rollup rows for one store. Keeps the ids of the
    dimension values it has seen (ids are never deleted, so a cached id stays right); shared
    by the store's threads (plain dict reads; a committed batch's ids are added after commit,
    never those of a transaction that rolled back)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._ids: dict[Dims, int] = {}
        money = dialect.rollup_money
        updates = ", ".join([money.add, *(f"{m} = r.{m} + excluded.{m}" for m in MEASURES)])
        self._tail = f"ON CONFLICT (bucket, dims_id) DO UPDATE SET {updates}"
        self._columns = {
            r: [
                ("bucket", HOUR if r.grain == "hour" else DAY),
                ("dims_id", BIGINT),
                *zip(money.columns, money.types, strict=True),
                *((m, BIGINT) for m in MEASURES),
            ]
            for r in plan.ROLLUPS
        }

    def dims_ids(self, session: Session, groups: dict[Rollup, Groups]) -> tuple[dict[Dims, int], dict[Dims, int]]:
        """The rollup_dims id of every group's dimension values, and those this transaction
        created (for ``committed``)."""
        ids = self._ids  # this dict object: ``committed`` replaces it, never clears it
        missing = {dims for rows in groups.values() for (_, dims) in rows if dims not in ids}
        if not missing:
            return ids, {}
        created = self._intern(session, missing)
        return {**ids, **created}, created

    def _intern(self, session: Session, missing: set[Dims]) -> dict[Dims, int]:
        """Ids of dimension values, inserting the new ones in key order (one lock order for
        every writer); one that another writer inserted meanwhile is read back."""
        by_key = {plan.dims_key(dims): dims for dims in missing}
        keys = sorted(by_key)
        found = self._lookup(session, keys)
        new = [key for key in keys if key not in found]
        if new:
            rows = [(key, *_full(by_key[key])) for key in new]
            session.write_rows("INSERT INTO rollup_dims", _DIMS_COLUMNS, rows, "ON CONFLICT (dims_key) DO NOTHING")
            found.update(self._lookup(session, new))
        return {by_key[key]: dims_id for key, dims_id in found.items()}

    def _lookup(self, session: Session, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[i : i + _LOOKUP_CHUNK]
            sql = f"SELECT dims_key, id FROM rollup_dims WHERE dims_key IN ({', '.join('?' * len(chunk))})"
            found.update((row[0], row[1]) for row in session.rows(sql, chunk))
        return found

    def add(self, session: Session, groups: dict[Rollup, Groups], ids: dict[Dims, int]) -> None:
        """Add each rollup's groups to its rows (one bulk upsert per rollup)."""
        encode = self.dialect.rollup_money.encode
        for rollup, rows in groups.items():
            buckets: dict[str, Any] = {}
            params = []
            for (bucket, dims), totals in rows.items():
                value = buckets.get(bucket)
                if value is None:
                    value = buckets[bucket] = self.dialect.bucket_of_text(rollup.grain, bucket)
                params.append((value, ids[dims], *encode(totals[0]), *totals[1:]))
            params.sort(key=lambda row: (row[0], row[1]))  # b-tree order, and one lock order
            session.write_rows(f"INSERT INTO {rollup.table} AS r", self._columns[rollup], params, self._tail)

    def committed(self, created: dict[Dims, int]) -> None:
        if not created:
            return
        if len(self._ids) > _DIMS_CACHE_LIMIT:
            self._ids = dict(created)  # a new dict: other threads may be reading the old one
        else:
            self._ids.update(created)
