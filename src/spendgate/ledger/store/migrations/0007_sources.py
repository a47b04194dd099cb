"""Spend from outside the proxy (issue 14): every event says which door it came in by.

- ``usage_events.source``: proxy, ingest (POST /v1/usage, ``spendgate ingest``), otlp
  (POST /v1/traces), batch, manual (``spendgate costs add``), provider_import. Events before: proxy.
- ``usage_events.external_id``: the client's id of the record (OTLP: TRACE-SPAN); the event id is
  derived from it, so the same record twice is one event (``usage_events.id`` is unique).
- ``usage_events.client_reported``: ``cost_usd`` is the client's figure (or a manual amount).
- ``usage_events.otel_span``: W3C ids: a proxied request's traceparent (TRACE-PARENT), an OTLP
  event's own span (TRACE-SPAN); indexed only where set, so the proxy's hot path pays nothing.
- ``otel_links``: a span exported over OTLP whose id a proxied request carried (an instrumented
  HTTP client's) names its parent, the GenAI span of that call, which is then linked to the
  proxied call rather than counted again (it may be exported in a later request).
- ``rollup_dims.source``: a rollup dimension (``report --by source``), the last of the dims key.
  Existing entries are all proxy: their key gains the encoded value ``5:proxy``, through a ``#``
  prefix no key starts with, so no intermediate key collides with another entry's (PostgreSQL
  checks a unique index row by row).
- ``ingest_files``: how far into a file ``spendgate ingest`` stored, to resume there (a file is
  known by a hash of its first two lines, and the key it is ingested for).

Python rather than SQL because every step checks what is there first: a ledger whose rollups were
rebuilt by migration 0003 (a SQLite ledger that lost ``schema_migrations``) runs this again, and
must get the rollup column back without adding the event columns twice.
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.store.migrate import existing_columns, portable

_EVENT_COLUMNS = (
    ("source", "{text} NOT NULL DEFAULT 'proxy'"),
    ("external_id", "{text}"),
    ("client_reported", "{bool} NOT NULL DEFAULT FALSE"),
    ("otel_span", "{text}"),
)
_TABLES = (
    """CREATE TABLE IF NOT EXISTS otel_links (
        span_ref {text} PRIMARY KEY,
        proxied_ref {text} NOT NULL,
        created_at {timestamp} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ingest_files (
        fingerprint {text} NOT NULL,
        key_name {text} NOT NULL,
        path {text} NOT NULL,
        offset_bytes {bigint} NOT NULL,
        records {bigint} NOT NULL,
        updated_at {timestamp} NOT NULL,
        PRIMARY KEY (fingerprint, key_name)
    )""",
    "CREATE INDEX IF NOT EXISTS usage_events_otel_span ON usage_events (otel_span) WHERE otel_span IS NOT NULL",
)


def upgrade(session: Any, dialect: Any) -> None:
    present = existing_columns(session, dialect, "usage_events")
    for name, ddl in _EVENT_COLUMNS:
        if name not in present:
            session.execute(portable(f"ALTER TABLE usage_events ADD COLUMN {name} {ddl}", dialect))
    for statement in _TABLES:
        session.execute(portable(statement, dialect))
    if "source" not in existing_columns(session, dialect, "rollup_dims"):
        session.execute(portable("ALTER TABLE rollup_dims ADD COLUMN source {text}", dialect))
    session.execute("UPDATE rollup_dims SET dims_key = '#' || dims_key, source = 'proxy' WHERE source IS NULL")
    session.execute("UPDATE rollup_dims SET dims_key = substr(dims_key, 2) || '5:proxy' WHERE dims_key LIKE '#%'")
