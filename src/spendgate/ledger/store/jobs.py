"""Once-per-period background jobs across replicas (``job_runs`` table)."""

from __future__ import annotations

from datetime import datetime

from spendgate.ledger.store.base import StoreBase


class JobsMixin(StoreBase):
    def claim_job_run(self, job: str, run_key: str, now: datetime) -> bool:
        """True for the one caller, of every replica, that claims ``run_key`` of ``job`` first
        (the database's uniqueness settles the race); False when it was claimed already."""
        with self._dialect.transaction() as session:
            cursor = session.execute(
                "INSERT INTO job_runs (job, run_key, claimed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (job, run_key) DO NOTHING",
                (job, run_key, self._dialect.ts(now)),
            )
            return cursor.rowcount == 1
