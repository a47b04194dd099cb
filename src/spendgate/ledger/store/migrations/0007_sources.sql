-- Spend from outside the proxy (issue 14): every event says which door it came in by.
--   source:          proxy, ingest (POST /v1/usage, `spendgate ingest`), otlp (POST /v1/traces),
--                    batch, manual (`spendgate costs add`), provider_import. Events before: proxy.
--   external_id:     the client's id of the record (OTLP: TRACE-SPAN); the event id is derived
--                    from it, so the same record twice is one event (usage_events.id is unique).
--   client_reported: cost_usd is the client's figure (or a manual amount), not spendgate's price.
--   otel_span:       W3C ids: a proxied request's traceparent (TRACE-PARENT), an OTLP event's own
--                    span (TRACE-SPAN); a span exported for a call the gateway served is linked.
ALTER TABLE usage_events ADD COLUMN source {text} NOT NULL DEFAULT 'proxy';
ALTER TABLE usage_events ADD COLUMN external_id {text};
ALTER TABLE usage_events ADD COLUMN client_reported {bool} NOT NULL DEFAULT FALSE;
ALTER TABLE usage_events ADD COLUMN otel_span {text};
-- Only the few events that carry one are indexed (the proxy's hot path pays nothing otherwise).
CREATE INDEX usage_events_otel_span ON usage_events (otel_span) WHERE otel_span IS NOT NULL;

-- A span exported over OTLP whose id a proxied request carried as its traceparent (an
-- instrumented HTTP client's span) names its parent (the GenAI span of that call, exported in the
-- same request or a later one): the parent is linked to the proxied call, not counted again.
CREATE TABLE otel_links (
    span_ref {text} PRIMARY KEY,  -- TRACE-SPAN of the parent
    proxied_ref {text} NOT NULL,  -- the otel_span of the proxied event (TRACE-CHILD)
    created_at {timestamp} NOT NULL
);

-- source is a rollup dimension (report --by source), the last of the dims key. Existing entries
-- are all proxy: their key gains the encoded value '5:proxy'. Through a '#' prefix no key can
-- start with, so no intermediate key can collide with another entry's (unique checked per row).
ALTER TABLE rollup_dims ADD COLUMN source {text};
UPDATE rollup_dims SET dims_key = '#' || dims_key, source = 'proxy';
UPDATE rollup_dims SET dims_key = substr(dims_key, 2) || '5:proxy';

-- `spendgate ingest FILE`: how far into a file the last run stored, to resume there. A file is
-- known by a hash of its first 64 KiB (a log that grows is the same file) and the key it is
-- ingested for.
CREATE TABLE ingest_files (
    fingerprint {text} NOT NULL,
    key_name {text} NOT NULL,
    path {text} NOT NULL,
    offset_bytes {bigint} NOT NULL,
    records {bigint} NOT NULL,
    updated_at {timestamp} NOT NULL,
    PRIMARY KEY (fingerprint, key_name)
);
