"""Spend anomalies, the rules watching scopes, and suspensions.

Anomalies are operational records (like alerts): recording one does not bump the config
version. Rules and suspensions are configuration: they go through ``_write``, so every
gateway sharing the database reloads them with its directory within a refresh interval,
which is what makes a suspension hold on every replica.

Exactly once across replicas: :meth:`record_anomaly` locks the scope's row in
``anomaly_scopes`` before reading its latest anomaly, so two replicas that flag the same
spike (at instants a few seconds apart, so with different window starts) serialize, and
the second one extends the first one's anomaly. Only the transaction that inserts an
anomaly inserts its ``spend.anomaly`` alert and the alert's deliveries (the alerts part
sends them, signed, with retries), so the webhook goes out once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from spendgate.anomalies.detector import SCORE_QUANTUM
from spendgate.anomalies.record import ACKNOWLEDGED, RESOLVED, Anomaly
from spendgate.budgets.model import ANOMALY_SCOPE_KINDS, ANY_TRACE, Scope
from spendgate.budgets.rules import Suspension
from spendgate.ledger.errors import StoreError
from spendgate.ledger.store.alerts import _INSERT_ALERT, fan_out
from spendgate.ledger.store.base import StoreBase
from spendgate.ledger.store.dialect import Row
from spendgate.money import format_usd
from spendgate.reports.spec import ReportQuery, Where

ANOMALY_EVENT = "spend.anomaly"
DEFAULT_TRACE_SUSPENSION = timedelta(hours=24)  # the ``trace_suspension_hours`` setting's default
# The most trace suspensions a gateway loads (the newest): they lapse after
# ``trace_suspension_hours`` anyway; this bounds memory if a flood of runaways outpaces that.
MAX_TRACE_SUSPENSIONS = 100_000
# The raw columns a live check reads per event: enough to put it in every watched scope.
_RECENT = "SELECT ts, cost_usd, key_name, team, project, feature, customer, model, trace_id, tags FROM usage_events"


def scope_where(scope: Scope) -> Where:
    """A budget scope as a report filter (``parse_where``'s shape)."""
    if scope.kind == "org":
        return ()
    if scope.kind == "tag":
        tag_key, _, tag_value = (scope.value or "").partition("=")
        return ((f"tag:{tag_key}", (tag_value,)),)
    return ((scope.kind, (scope.value,)),)


def anomaly_payload(anomaly_id: str, anomaly: Anomaly, *, at: datetime, alert_id: str, suspended: bool) -> dict:
    return {
        "event": ANOMALY_EVENT,
        "id": alert_id,
        "at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "anomaly": {"id": anomaly_id, **anomaly.to_json()},
        "suspended": suspended,
    }


class AnomaliesMixin(StoreBase):
    # --- anomalies (operational) ---------------------------------------------------------
    def record_anomaly(
        self,
        anomaly: Anomaly,
        *,
        merge_gap: timedelta,
        source: str,
        now: datetime,
        alert_id: str,
        trace_suspension: timedelta = DEFAULT_TRACE_SUSPENSION,
    ) -> tuple[str, bool, bool]:
        """Store ``anomaly``, or grow the scope's latest one when it is not resolved and ends
        within ``merge_gap`` of this one's start. Returns (id, inserted, suspended): only an
        insert records the ``spend.anomaly`` alert, and, when a rule says so, suspends the
        scope (bumping the config version so every gateway refuses it). A trace is suspended
        by a rule naming it or ``trace:*``, for ``trace_suspension``."""
        d = self._dialect
        scope = anomaly.scope
        with d.transaction() as session:
            session.execute(
                "INSERT INTO anomaly_scopes (scope, touched) VALUES (?, 0) ON CONFLICT (scope) DO NOTHING", (scope,)
            )
            # The lock: concurrent writers for this scope wait here until this one commits.
            session.execute("UPDATE anomaly_scopes SET touched = touched + 1 WHERE scope = ?", (scope,))
            latest = session.one(
                "SELECT id, start_at, end_at, cost_usd, expected_usd, score, status FROM anomalies"
                " WHERE scope = ? AND start_at <= ? ORDER BY start_at DESC LIMIT 1",
                (scope, d.ts(anomaly.end)),
            )
            if latest is not None and latest["status"] != RESOLVED:
                latest_end = _aware(d, latest["end_at"])
                if latest_end + merge_gap >= anomaly.start:
                    start = min(_aware(d, latest["start_at"]), anomaly.start)
                    end = max(latest_end, anomaly.end)
                    # Two replicas follow the same spike from slightly different starts: the
                    # wider reading of it is kept.
                    cost = max(anomaly.cost_usd, d.money_value(latest["cost_usd"]))
                    expected = max(anomaly.expected_usd, d.money_value(latest["expected_usd"]))
                    score = max(anomaly.score, d.money_value(latest["score"]))
                    session.execute(
                        "UPDATE anomalies SET start_at = ?, end_at = ?, cost_usd = ?, expected_usd = ?, score = ?,"
                        " drivers = ?"
                        " WHERE id = ?",
                        (
                            d.ts(start),
                            d.ts(end),
                            d.money(cost),
                            d.money(expected),
                            d.money(score),
                            d.json([x.to_json() for x in anomaly.drivers]),
                            latest["id"],
                        ),
                    )
                    return latest["id"], False, False
            anomaly_id = f"anom_{secrets.token_hex(6)}"
            inserted = session.execute(
                "INSERT INTO anomalies (id, scope, start_at, end_at, cost_usd, expected_usd, score, drivers,"
                " status, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (scope, start_at) DO NOTHING",
                (
                    anomaly_id,
                    scope,
                    d.ts(anomaly.start),
                    d.ts(anomaly.end),
                    d.money(anomaly.cost_usd),
                    d.money(anomaly.expected_usd),
                    d.money(anomaly.score),
                    d.json([x.to_json() for x in anomaly.drivers]),
                    anomaly.status,
                    source,
                    d.ts(now),
                ),
            ).rowcount
            if inserted != 1:
                return "", False, False
            # Only what is happening now suspends a scope: a scan of last month does not.
            is_trace = scope.startswith("trace:")
            rule = "SELECT 1 FROM anomaly_rules WHERE scope IN (?, ?) AND suspend = ?"
            named = (scope, ANY_TRACE if is_trace else scope, True)
            suspend = source == "live" and bool(session.rows(rule, named))
            if suspend:
                expires = d.ts(now + trace_suspension) if is_trace else None
                session.execute(
                    "INSERT INTO suspensions (scope, anomaly_id, created_at, expires_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (scope) DO NOTHING",
                    (scope, anomaly_id, d.ts(now), expires),
                )
                session.execute("UPDATE meta SET value = value + 1 WHERE name = 'config_version'")
            # A scan over history records what it finds, but pages nobody about last month.
            if source == "live":
                payload = anomaly_payload(anomaly_id, anomaly, at=now, alert_id=alert_id, suspended=suspend)
                at = d.ts(now)
                row = (alert_id, ANOMALY_EVENT, scope, anomaly_id, 0, orjson.dumps(payload).decode(), at)
                if session.execute(_INSERT_ALERT, row).rowcount == 1:
                    fan_out(session, alert_id, at, scope.removeprefix("team:") if scope.startswith("team:") else None)
            return anomaly_id, True, suspend

    def _anomaly_json(self, row: Row) -> dict[str, Any]:
        d = self._dialect
        return {
            "id": row["id"],
            "scope": row["scope"],
            "start": d.ts_text(row["start_at"]),
            "end": d.ts_text(row["end_at"]),
            "cost_usd": format_usd(d.money_value(row["cost_usd"])),
            "expected_usd": format_usd(d.money_value(row["expected_usd"])),
            "score": str(d.money_value(row["score"]).quantize(SCORE_QUANTUM)),
            "status": row["status"],
            "source": row["source"],
            "drivers": d.json_value(row["drivers"]) if row["drivers"] is not None else [],
        }

    def list_anomalies(
        self,
        since: datetime | None = None,
        limit: int | None = 1000,
        *,
        until: datetime | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Anomalies whose window [start_at, end_at) overlaps [since, until), oldest first
        (``newest_first``: the latest ``limit`` of them, as a page lists them; ``limit=None``:
        all of them, as the month's finance report reads them: one that began the month before
        and ran into it is part of this month's story too)."""
        clauses, params = [], []
        if since is not None:
            clauses.append("end_at > ?")
            params.append(self._dialect.ts(since))
        if until is not None:
            clauses.append("start_at < ?")
            params.append(self._dialect.ts(until))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "start_at DESC, seq DESC" if newest_first else "start_at, seq"
        bound = "" if limit is None else " LIMIT ?"
        rows = self._query(
            f"SELECT * FROM anomalies{where} ORDER BY {order}{bound}", (*params, *(() if limit is None else (limit,)))
        )
        return [self._anomaly_json(r) for r in rows]

    def anomaly(self, anomaly_id: str) -> dict[str, Any]:
        rows = self._query("SELECT * FROM anomalies WHERE id = ?", (anomaly_id,))
        if not rows:
            raise StoreError(f"unknown anomaly {anomaly_id!r}; see `spendgate anomalies list`")
        return self._anomaly_json(rows[0])

    def set_anomaly_status(self, anomaly_id: str, status: str) -> dict[str, Any]:
        """Acknowledge or resolve (``record``'s transitions: a resolved one stays resolved)."""
        current = self.anomaly(anomaly_id)
        if status == ACKNOWLEDGED and current["status"] == RESOLVED:
            raise StoreError("a resolved anomaly cannot be acknowledged (a new spike is a new anomaly)")
        with self._dialect.transaction() as session:
            guard = " AND status <> 'resolved'" if status == ACKNOWLEDGED else ""
            session.execute(f"UPDATE anomalies SET status = ? WHERE id = ?{guard}", (status, anomaly_id))
        return self.anomaly(anomaly_id)

    # --- what the detector reads -----------------------------------------------------------
    def hourly_costs(self, scope: Scope, since: date, until: date) -> dict[datetime, Decimal]:
        """The scope's cost per UTC hour over the days [since, until] (rollups where they
        cover it): hours without spend are absent."""
        result = self.report(ReportQuery(by=("hour",), since=since, until=until, where=scope_where(scope)))  # type: ignore[attr-defined]
        series: dict[datetime, Decimal] = {}
        for row in result.rows:
            label = row.dims["hour"]
            if label and row.cost_usd:
                series[datetime.strptime(label[:13], "%Y-%m-%dT%H").replace(tzinfo=UTC)] = row.cost_usd
        return series

    def usual_breakdown(
        self, scope: Scope, since: date, until: date, dims: Sequence[str]
    ) -> dict[str, dict[str, Decimal]]:
        """The scope's cost by each of ``dims`` over [since, until]: the usual shares drivers compare with."""
        usual: dict[str, dict[str, Decimal]] = {}
        for dim in dims:
            result = self.report(ReportQuery(by=(dim,), since=since, until=until, where=scope_where(scope)))  # type: ignore[attr-defined]
            usual[dim] = {str(r.dims[dim]): r.cost_usd for r in result.rows if r.dims[dim] is not None}
        return usual

    def recent_events(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The priced events of [since, until), each with its owners (the live check's input)."""
        d = self._dialect
        rows = self._query(f"{_RECENT} WHERE ts >= ? AND ts < ? AND cost_usd IS NOT NULL", (d.ts(since), d.ts(until)))
        return [
            {
                "ts": _aware(d, r["ts"]),
                "cost": d.money_value(r["cost_usd"]),
                "key": r["key_name"],
                "team": r["team"],
                "project": r["project"],
                "feature": r["feature"],
                "customer": r["customer"],
                "model": r["model"],
                "trace": r["trace_id"],
                "tags": d.json_value(r["tags"]) if r["tags"] is not None else None,
            }
            for r in rows
        ]

    def trace_totals(
        self, since: datetime, until: datetime, limit: int
    ) -> list[tuple[str | None, str | None, Decimal]]:
        """(feature, project, total cost) of up to ``limit`` traces with events in
        [since, until): the past runs a trace is compared with (``anomalies.traces``)."""
        d = self._dialect
        rows = self._query(
            f"SELECT MIN(feature) AS feature, MIN(project) AS project, {d.money_sum('cost_usd')} AS cost"
            " FROM usage_events WHERE ts >= ? AND ts < ? AND trace_id IS NOT NULL AND cost_usd IS NOT NULL"
            " GROUP BY trace_id LIMIT ?",
            (d.ts(since), d.ts(until), limit),
        )
        return [(r["feature"], r["project"], d.money_value(r["cost"])) for r in rows]

    # --- rules and suspensions (configuration) --------------------------------------------
    def create_anomaly_rule(self, scope: Scope, suspend: bool) -> dict[str, Any]:
        text = str(scope)
        self._write(
            [
                ("DELETE FROM anomaly_rules WHERE scope = ?", (text,)),
                (
                    "INSERT INTO anomaly_rules (scope, suspend, created_at) VALUES (?, ?, ?)",
                    (text, suspend, self._now()),
                ),
            ]
        )
        return {"scope": text, "suspend": suspend}

    def list_anomaly_rules(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT scope, suspend FROM anomaly_rules ORDER BY scope")
        return [{"scope": r["scope"], "suspend": bool(r["suspend"])} for r in rows]

    def delete_anomaly_rule(self, scope: Scope) -> None:
        if not self._exists("anomaly_rules", str(scope), column="scope"):
            raise StoreError(f"no anomaly rule for {scope}")
        self._write([("DELETE FROM anomaly_rules WHERE scope = ?", (str(scope),))])

    def suspend_scope(self, scope: Scope, anomaly_id: str | None = None) -> None:
        self._write(
            [
                (
                    "INSERT INTO suspensions (scope, anomaly_id, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (scope) DO NOTHING",
                    (str(scope), anomaly_id, self._now()),
                )
            ]
        )

    def load_suspensions(self) -> list[Suspension]:
        """What ``load_rules`` hands the gateway (a scope that no longer parses is skipped):
        every suspension but traces, and the newest ``MAX_TRACE_SUSPENSIONS`` traces. Lapsed
        ones are loaded too until the live check deletes them (the gateway's clock, which
        tests inject, decides when a trace's suspension lapses, not this process's)."""
        d = self._dialect
        columns = "SELECT scope, anomaly_id, expires_at FROM suspensions"
        rows = self._query(f"{columns} WHERE scope NOT LIKE 'trace:%' ORDER BY scope")
        rows += self._query(
            f"{columns} WHERE scope LIKE 'trace:%' ORDER BY created_at DESC LIMIT ?", (MAX_TRACE_SUSPENSIONS,)
        )
        found = []
        for row in rows:
            try:
                scope = Scope.parse(row["scope"], ANOMALY_SCOPE_KINDS)
            except ValueError:
                continue
            expires = _aware(d, row["expires_at"]) if row["expires_at"] is not None else None
            found.append(Suspension(scope, row["anomaly_id"], expires))
        return found

    def list_suspensions(self) -> list[dict[str, Any]]:
        d = self._dialect
        rows = self._query("SELECT scope, anomaly_id, created_at, expires_at FROM suspensions ORDER BY scope")
        return [
            {
                "scope": r["scope"],
                "anomaly_id": r["anomaly_id"],
                "since": d.ts_text(r["created_at"]),
                "until": d.ts_text(r["expires_at"]) if r["expires_at"] is not None else None,
            }
            for r in rows
        ]

    def expire_suspensions(self, now: datetime) -> int:
        """Delete the trace suspensions lapsed at ``now``: every gateway then reloads without
        them (the config version moves only when one was deleted)."""
        d = self._dialect
        with d.transaction() as session:
            deleted = session.execute(
                "DELETE FROM suspensions WHERE expires_at IS NOT NULL AND expires_at <= ?", (d.ts(now),)
            ).rowcount
            if deleted:
                session.execute("UPDATE meta SET value = value + 1 WHERE name = 'config_version'")
        return deleted

    def resume_scope(self, scope: Scope) -> dict[str, Any]:
        text = str(scope)
        rows = [s for s in self.list_suspensions() if s["scope"] == text]
        if not rows:
            raise StoreError(f"{text} is not suspended; see `spendgate suspensions list`")
        self._write([("DELETE FROM suspensions WHERE scope = ?", (text,))])
        return rows[0]


def _aware(dialect: Any, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(dialect.ts_text(value).replace("Z", "+00:00"))
