"""What the anomalies page is asked to show, from its query string (pure): a status, a scope
kind and a period (the anomalies that overlap it). Bounded and validated here: a bad value is
a 400 that says what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from spendgate.anomalies.record import STATUSES
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS
from spendgate.ui.filters import FilterError, parse_period


@dataclass(frozen=True)
class AnomalyFilters:
    since: date
    until: date  # inclusive
    status: str | None = None  # None: every status
    kind: str | None = None  # a scope kind; None: every kind

    def params(self) -> dict[str, str]:
        out = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        if self.status:
            out["status"] = self.status
        if self.kind:
            out["kind"] = self.kind
        return out

    def query_string(self) -> str:
        return urlencode(self.params())


def parse_anomaly_filters(params: Mapping[str, str], today: date) -> AnomalyFilters:
    since, until = parse_period(params, today, "period")
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise FilterError(f"status is one of {', '.join(STATUSES)}")
    kind = params.get("kind") or None
    if kind is not None and kind not in ANOMALY_SCOPE_KINDS:
        raise FilterError(f"kind is one of {', '.join(ANOMALY_SCOPE_KINDS)}")
    return AnomalyFilters(since=since, until=until, status=status, kind=kind)
