"""The FOCUS export's one query: raw events summed per charge day x provider x model x owner x
price (finance/focus.py turns each group into a FOCUS row)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.reports import day_start

# Grouped by, in order; a group is one FOCUS row.
FOCUS_KEYS = (
    "day",
    "provider",
    "model",
    "project",
    "team",
    "cost_center",
    "service_tier",
    "source",
    "price_source",
)
FOCUS_FIGURES = (
    "requests",
    "unpriced_requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


class FocusMixin(StoreBase):
    def focus_groups(self, since: date, until: date) -> list[dict[str, Any]]:
        """Spend of [since, until] (inclusive, UTC days) per FOCUS_KEYS, with ``cost_usd``
        (exact, over the priced events) and FOCUS_FIGURES; ordered by its keys (a missing value first)."""
        dialect = self._dialect
        keys = [dialect.ts_label("day", "ts"), *FOCUS_KEYS[1:]]
        figures = (
            "count(*), count(*) FILTER (WHERE cost_usd IS NULL), coalesce(sum(input_tokens), 0),"
            " coalesce(sum(cached_input_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
            " coalesce(sum(cache_write_1h_tokens), 0), coalesce(sum(output_tokens), 0),"
            " coalesce(sum(reasoning_tokens), 0)"
        )
        group = ", ".join(str(i + 1) for i in range(len(keys)))
        sql = (
            f"SELECT {', '.join(keys)}, {dialect.money_sum('cost_usd')}, {figures} FROM usage_events"
            f" WHERE ts >= ? AND ts < ? GROUP BY {group}"
        )
        params = [dialect.ts(day_start(since)), dialect.ts(day_start(until + timedelta(days=1)))]
        out = []
        n = len(keys)
        for row in self._query(sql, params):
            group_row: dict[str, Any] = dict(zip(FOCUS_KEYS, row[:n], strict=True))
            group_row["cost_usd"] = dialect.money_value(row[n])
            group_row.update(zip(FOCUS_FIGURES, (int(v or 0) for v in row[n + 1 :]), strict=True))
            out.append(group_row)
        out.sort(key=lambda g: [str(g[k] or "") for k in FOCUS_KEYS])  # NULLs sort alike on both backends
        return out
