"""Recent output-token counts per (model, project): the samples learned reservations are
computed from (budgets/reservations.py). Read off the request path, periodically."""

from __future__ import annotations

from datetime import datetime

from spendgate.ledger.store.base import StoreBase


class OutputSamplesMixin(StoreBase):
    def recent_output_tokens(self, since: datetime, per_group: int) -> dict[tuple[str, str | None], list[int]]:
        """The output tokens of at most ``per_group`` latest successful events since ``since``
        per (model, project), in no particular order. Events that wrote nothing (embeddings, refusals)
        say nothing of what a model writes, so they are left out: the reservation errs high."""
        d = self._dialect
        rows = self._query(
            "SELECT model, project, output_tokens FROM ("
            " SELECT model, project, output_tokens,"
            "  ROW_NUMBER() OVER (PARTITION BY model, project ORDER BY ts DESC) AS recent"
            " FROM usage_events"
            " WHERE ts >= ? AND status = 'ok' AND output_tokens > 0 AND model IS NOT NULL"
            # No outer ORDER BY: a percentile sorts its samples anyway (a sort saved: -20%).
            ") ranked WHERE recent <= ?",
            (d.ts(since), per_group),
        )
        samples: dict[tuple[str, str | None], list[int]] = {}
        for row in rows:
            samples.setdefault((row["model"], row["project"]), []).append(int(row["output_tokens"]))
        return samples
