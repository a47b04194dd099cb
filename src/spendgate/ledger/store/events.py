"""The raw ledger: appending events (and adding them to the rollups, in the same
transaction), listing them, and retention's deletes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from spendgate.access.visibility import Visibility
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.store.base import HORIZON, StoreBase, micros
from spendgate.ledger.store.dialect import (
    BIGINT,
    BOOL,
    FLOAT,
    INTEGER,
    JSON,
    MONEY,
    TEXT,
    TIMESTAMP,
    Column,
    Dialect,
    Row,
    Session,
)
from spendgate.ledger.store.reports import events_where
from spendgate.ledger.store.visibility import visible_spend
from spendgate.money import format_usd
from spendgate.reports.spec import Where

_ID = attrgetter("id")
# A batch on its way in: its events and what the rollups need of each (rollups/maintain.py).
_STAGING = "usage_events_staging"
# What ``append_events`` writes, in ``event_rows`` order.
EVENT_COLUMNS: tuple[Column, ...] = (
    ("id", TEXT),
    ("ts", TIMESTAMP),
    ("provider", TEXT),
    ("model", TEXT),
    ("endpoint", TEXT),
    ("stream", BOOL),
    ("status", TEXT),
    ("http_status", INTEGER),
    ("project", TEXT),
    ("team", TEXT),
    ("cost_center", TEXT),
    ("feature", TEXT),
    ("environment", TEXT),
    ("customer", TEXT),
    ("key_name", TEXT),
    ("trace_id", TEXT),
    ("tags", JSON),
    ("input_tokens", BIGINT),
    ("cached_input_tokens", BIGINT),
    ("cache_write_tokens", BIGINT),
    ("cache_write_1h_tokens", BIGINT),
    ("output_tokens", BIGINT),
    ("reasoning_tokens", BIGINT),
    ("cost_usd", MONEY),
    ("rates", JSON),
    ("price_source", TEXT),
    ("estimated", BOOL),
    ("latency_ms", FLOAT),
    ("upstream_request_id", TEXT),
    ("service_tier", TEXT),
    ("source", TEXT),
    ("external_id", TEXT),
    ("client_reported", BOOL),
    ("otel_span", TEXT),
)


def staged_rows(
    events: Sequence[UsageEvent], dialect: Dialect, dims_ids: Sequence[tuple[int, int]]
) -> list[tuple[Any, ...]]:
    """Each event's ``EVENT_COLUMNS`` and then what the rollups need of it
    (``RollupWriter.staging_columns``: its dims ids, and what the rollups' money needs)."""
    ts, money, json, rollup_cost = dialect.ts, dialect.money, dialect.json, dialect.rollup_money.stage
    return [
        (
            e.id,
            ts(e.ts),
            e.provider,
            e.model,
            e.endpoint,
            e.stream,
            e.status,
            e.http_status,
            e.project,
            e.team,
            e.cost_center,
            e.feature,
            e.environment,
            e.customer,
            e.key,
            e.trace_id,
            json(e.tags) if e.tags else None,
            e.input_tokens,
            e.cached_input_tokens,
            e.cache_write_tokens,
            e.cache_write_1h_tokens,
            e.output_tokens,
            e.reasoning_tokens,
            None if e.cost_usd is None else money(e.cost_usd),
            json(e.rates) if e.rates else None,
            e.price_source,
            e.estimated,
            float(e.latency_ms),
            e.upstream_request_id,
            e.service_tier,
            e.source,
            e.external_id,
            e.client_reported,
            e.otel_span,
            dims_id,
            lean_dims_id,
            *rollup_cost(e.cost_usd),
        )
        for e, (dims_id, lean_dims_id) in zip(events, dims_ids, strict=True)
    ]


def event_as_json(row: Row, dialect: Dialect) -> dict[str, Any]:
    """A stored event as the contract's JSON object (``spendgate events --format json``)."""
    cost = row["cost_usd"]
    return {
        "id": row["id"],
        "ts": dialect.ts_text(row["ts"]),
        "provider": row["provider"],
        "model": row["model"],
        "endpoint": row["endpoint"],
        "stream": bool(row["stream"]),
        "project": row["project"] or "unallocated",
        "team": row["team"],
        "cost_center": row["cost_center"],
        "feature": row["feature"],
        "environment": row["environment"],
        "customer": row["customer"],
        "key": row["key_name"],
        "trace_id": row["trace_id"],
        "tags": dialect.json_value(row["tags"]) or {},
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cached_input_tokens": row["cached_input_tokens"],
        "cache_write_tokens": row["cache_write_tokens"],
        "cache_write_1h_tokens": row["cache_write_1h_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "cost_usd": None if cost is None else format_usd(dialect.money_value(cost)),
        "priced": cost is not None,
        "rates": dialect.json_value(row["rates"]) or None,
        "price_source": row["price_source"],
        "status": row["status"],
        "http_status": row["http_status"],
        "estimated": bool(row["estimated"]),
        "latency_ms": row["latency_ms"],
        "upstream_request_id": row["upstream_request_id"],
        # As recorded: null when nobody named a tier (reports show those as "standard").
        "service_tier": row["service_tier"],
        "source": row["source"],
        "external_id": row["external_id"],
        "client_reported": bool(row["client_reported"]),
    }


class EventsMixin(StoreBase):
    def append_events(self, events: Sequence[UsageEvent]) -> int:
        """Store the new events and add them to the rollups, in one transaction. Only events
        actually stored are added (a replayed id is not counted twice); an event older than
        the retention horizon is refused, since whether it is new can no longer be told."""
        return len(self.append_new(events))

    def append_new(self, events: Sequence[UsageEvent]) -> set[str]:
        """``append_events``, answering the ids it stored: the others were in the ledger already
        (or repeated an id earlier in ``events``, or were older than the retention horizon)."""
        if not events:
            return set()
        with self._dialect.transaction() as session:
            horizon = session.scalar("SELECT value FROM meta WHERE name = ?", (HORIZON,))
            if horizon is not None:
                events = [e for e in events if micros(e.ts) >= horizon]
            if not events:
                return set()
            # In id order (stable: of two with one id, the first stays first): writers racing
            # with overlapping batches then lock rows in one order and queue, never deadlock.
            events = sorted(events, key=_ID)
            ids, created = self._rollups.dims_ids(session, events)
            rows = staged_rows(events, self._dialect, ids)
            session.stage(_STAGING, [*EVENT_COLUMNS, *self._rollups.staging_columns], rows)
            new = session.insert_new("usage_events", EVENT_COLUMNS, _STAGING, "id")
            stored = {e.id for e in events} if new is None else new
            if new is not None and stored:
                self._unstage_replays(session, {e.id for e in events} - new)
            if stored:
                self._add_to_rollups(session, _STAGING)
        self._rollups.committed(created)  # only now: a rolled-back entry must not be cached
        return stored

    def proxied_spans(self, refs: Sequence[str]) -> set[str]:
        """Which of these W3C span refs (``TRACE-SPAN``) a proxied request carried in its
        traceparent, or are linked to one (``link_spans``): an OTLP span describing such a call
        is linked to it, not counted twice."""
        found: set[str] = set()
        chunk = sorted(set(refs))
        for i in range(0, len(chunk), 900):
            part = chunk[i : i + 900]
            condition, params = self._dialect.key_in("otel_span", part)
            rows = self._query(f"SELECT otel_span FROM usage_events WHERE source = 'proxy' AND {condition}", params)
            found.update(row[0] for row in rows)
            condition, params = self._dialect.key_in("span_ref", part)
            found.update(row[0] for row in self._query(f"SELECT span_ref FROM otel_links WHERE {condition}", params))
        return found

    def link_spans(self, links: Sequence[tuple[str, str]], now: datetime) -> None:
        """(parent span ref, proxied span ref): the parent describes that proxied call."""
        if not links:
            return
        ts = self._dialect.ts(now)
        with self._dialect.transaction() as session:
            for parent, proxied in sorted(set(links)):
                session.execute(
                    "INSERT INTO otel_links (span_ref, proxied_ref, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (span_ref) DO NOTHING",
                    (parent, proxied, ts),
                )

    # --- `spendgate ingest`: where a file's last run stopped ----------------------------------------
    def ingest_progress(self, fingerprint: str, key_name: str) -> tuple[int, int] | None:
        """(bytes, records) of the file already stored by an earlier run, or None."""
        rows = self._query(
            "SELECT offset_bytes, records FROM ingest_files WHERE fingerprint = ? AND key_name = ?",
            (fingerprint, key_name),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def save_ingest_progress(
        self, fingerprint: str, key_name: str, path: str, offset: int, records: int, now: datetime
    ) -> None:
        with self._dialect.transaction() as session:
            session.execute(
                "INSERT INTO ingest_files (fingerprint, key_name, path, offset_bytes, records, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint, key_name) DO UPDATE SET path = excluded.path,"
                " offset_bytes = excluded.offset_bytes, records = excluded.records, updated_at = excluded.updated_at",
                (fingerprint, key_name, path, offset, records, self._dialect.ts(now)),
            )

    def spend_written_elsewhere(self) -> None:
        """Tell running gateways that spend reached the ledger without them (``spendgate ingest``,
        ``costs add``): the config version moves, and their in-process budget counters reload."""
        self._write([])

    def _unstage_replays(self, session: Session, old: set[Any]) -> None:
        """Take out of the staging table what this transaction did not store: the events
        stored before, and the second of two events with one id."""
        session.execute(f"DELETE FROM {_STAGING} WHERE n NOT IN (SELECT min(n) FROM {_STAGING} GROUP BY id)")
        chunk = sorted(old)
        for i in range(0, len(chunk), 900):
            condition, params = self._dialect.key_in("id", chunk[i : i + 900])
            session.execute(f"DELETE FROM {_STAGING} WHERE {condition}", params)

    def _add_to_rollups(self, session: Session, staging: str) -> None:
        self._rollups.add(session, staging)

    def list_events(
        self,
        limit: int = 50,
        *,
        visible: Visibility | None = None,
        where: Where = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The newest events; ``visible``: only those a caller may see (None: all); ``where``:
        only those matching (``parse_where``, as reports read it); ``since``/``until``: in
        [since, until)."""
        clauses: list[str] = []
        params: list[Any] = []
        if visible is not None:
            condition, values = visible_spend(visible)
            clauses.append(condition)
            params += values
        where_clauses, where_params = events_where(self._dialect, where)
        clauses += where_clauses
        params += where_params
        if since is not None:
            clauses.append("ts >= ?")
            params.append(self._dialect.ts(since))
        if until is not None:
            clauses.append("ts < ?")
            params.append(self._dialect.ts(until))
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT * FROM usage_events{condition} ORDER BY ts DESC, seq DESC LIMIT ?", (*params, limit)
        )
        return [event_as_json(r, self._dialect) for r in rows]

    # --- retention ------------------------------------------------------------------------------
    def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before``; rollups stay. The horizon is recorded
        first, so from then on a report that would need the deleted events says so, and an
        event older than it arriving late is refused (its id can no longer be checked). The
        delete goes in chunks, each its own transaction, so writers never wait long."""
        dialect = self._dialect
        with dialect.transaction() as session:
            session.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                " SET value = CASE WHEN excluded.value > meta.value THEN excluded.value ELSE meta.value END",
                (HORIZON, micros(before)),
            )
        key, chunk, cutoff = dialect.event_row_key, dialect.prune_chunk, dialect.ts(before)
        deleted = 0
        while True:
            with dialect.transaction() as session:
                count = session.execute(
                    f"DELETE FROM usage_events WHERE {key} IN (SELECT {key} FROM usage_events WHERE ts < ? LIMIT ?)",
                    (cutoff, chunk),
                ).rowcount
            deleted += count
            if count < chunk:
                return deleted
