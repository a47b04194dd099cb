"""Provider batch jobs created through the gateway, and who created them (``batches`` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spendgate.attribution.rules import Attribution
from spendgate.ledger.spool.spool import parse_ts
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row

_COLUMNS = (
    "provider, batch_id, created_at, endpoint, key_name, project, team, cost_center, environment,"
    " feature, customer, trace_id, tags"
)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    provider: str
    batch_id: str
    created_at: datetime  # when the gateway accepted it: its results are priced and dated at it
    endpoint: str | None  # what each request of the batch calls (/v1/chat/completions, /v1/messages)
    owner: Attribution  # the creator's attribution


class BatchesMixin(StoreBase):
    def remember_batch(self, batch: BatchRecord) -> None:
        """Record a new batch and its creator; a batch id already known keeps its first record."""
        owner, dialect = batch.owner, self._dialect
        with dialect.transaction() as session:
            session.execute(
                f"INSERT INTO batches ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, batch_id) DO NOTHING",
                (
                    batch.provider,
                    batch.batch_id,
                    dialect.ts(batch.created_at),
                    batch.endpoint,
                    owner.key,
                    owner.project,
                    owner.team,
                    owner.cost_center,
                    owner.environment,
                    owner.feature,
                    owner.customer,
                    owner.trace_id,
                    dialect.json(dict(owner.tags)) if owner.tags else None,
                ),
            )

    def note_batch_files(
        self, provider: str, batch_id: str, output_file_id: str | None, error_file_id: str | None
    ) -> None:
        """The result files of a batch, as its batch object names them (OpenAI)."""
        with self._dialect.transaction() as session:
            session.execute(
                "UPDATE batches SET output_file_id = COALESCE(?, output_file_id),"
                " error_file_id = COALESCE(?, error_file_id) WHERE provider = ? AND batch_id = ?",
                (output_file_id, error_file_id, provider, batch_id),
            )

    def batch(self, provider: str, batch_id: str) -> BatchRecord | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM batches WHERE provider = ? AND batch_id = ?", (provider, batch_id))
        return self._batch(rows[0]) if rows else None

    def batch_of_file(self, provider: str, file_id: str) -> BatchRecord | None:
        """The batch whose output (or error) file ``file_id`` is, if created through the gateway."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM batches WHERE provider = ? AND (output_file_id = ? OR error_file_id = ?)",
            (provider, file_id, file_id),
        )
        return self._batch(rows[0]) if rows else None

    def _batch(self, row: Row) -> BatchRecord:
        dialect = self._dialect
        return BatchRecord(
            provider=row["provider"],
            batch_id=row["batch_id"],
            created_at=parse_ts(dialect.ts_text(row["created_at"])),
            endpoint=row["endpoint"],
            owner=Attribution(
                project=row["project"],
                team=row["team"],
                cost_center=row["cost_center"],
                environment=row["environment"],
                key=row["key_name"],
                feature=row["feature"],
                customer=row["customer"],
                trace_id=row["trace_id"],
                tags=dialect.json_value(row["tags"]) or None,
            ),
        )
