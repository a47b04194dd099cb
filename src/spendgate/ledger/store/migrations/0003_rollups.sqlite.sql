-- Rollups (spendgate/ledger/rollups/), as SQLite ledgers have had them since schema version 2,
-- and the rollups of the events already stored. A rollup's cost is whole nano-dollars plus
-- atto-dollars (integers SQLite sums natively) and exact decimal text for any rest (see
-- store/dialects/sqlite.py). The backfill uses the functions the SQLite dialect registers on
-- its connection: decimal_sum, dims_key and cost_nanos/cost_attos/cost_rest, which compute
-- what Python computes for each batch.

CREATE TABLE IF NOT EXISTS rollup_dims (
    id INTEGER PRIMARY KEY,
    dims_key TEXT NOT NULL UNIQUE,  -- rollups.dims_key of the values a rollup keeps
    provider TEXT, model TEXT, project TEXT, team TEXT, cost_center TEXT,
    feature TEXT, environment TEXT, customer TEXT, key_name TEXT
);
-- A budget's spend selects the entries of its scope (team:X…) before summing rollup rows.
-- Entries are added only for new combinations of values, so these cost ingest nothing.
CREATE INDEX IF NOT EXISTS rollup_dims_team ON rollup_dims (team);
CREATE INDEX IF NOT EXISTS rollup_dims_project ON rollup_dims (project);
CREATE INDEX IF NOT EXISTS rollup_dims_key_name ON rollup_dims (key_name);
CREATE INDEX IF NOT EXISTS rollup_dims_customer ON rollup_dims (customer);
CREATE INDEX IF NOT EXISTS rollup_dims_feature ON rollup_dims (feature);

CREATE TABLE IF NOT EXISTS rollup_hourly (
    bucket TEXT NOT NULL,  -- UTC hour: 2025-03-10T14
    dims_id INTEGER NOT NULL,  -- rollup_dims.id
    cost_nanos INTEGER NOT NULL CHECK (typeof(cost_nanos) = 'integer'),
    cost_attos INTEGER NOT NULL CHECK (typeof(cost_attos) = 'integer'),
    cost_rest TEXT,
    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, unpriced_requests INTEGER NOT NULL, estimated_requests INTEGER NOT NULL, error_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, dims_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rollup_daily (
    bucket TEXT NOT NULL,  -- UTC day: 2025-03-10
    dims_id INTEGER NOT NULL,  -- rollup_dims.id
    cost_nanos INTEGER NOT NULL CHECK (typeof(cost_nanos) = 'integer'),
    cost_attos INTEGER NOT NULL CHECK (typeof(cost_attos) = 'integer'),
    cost_rest TEXT,
    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, unpriced_requests INTEGER NOT NULL, estimated_requests INTEGER NOT NULL, error_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, dims_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rollup_daily_lean (
    bucket TEXT NOT NULL,  -- UTC day: 2025-03-10
    dims_id INTEGER NOT NULL,  -- rollup_dims.id
    cost_nanos INTEGER NOT NULL CHECK (typeof(cost_nanos) = 'integer'),
    cost_attos INTEGER NOT NULL CHECK (typeof(cost_attos) = 'integer'),
    cost_rest TEXT,
    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, unpriced_requests INTEGER NOT NULL, estimated_requests INTEGER NOT NULL, error_requests INTEGER NOT NULL,
    PRIMARY KEY (bucket, dims_id)
) WITHOUT ROWID;

-- --- the events stored before this migration --------------------------------------------------
INSERT INTO rollup_dims (dims_key, provider, model, project, team, cost_center, feature, environment, customer, key_name)
SELECT DISTINCT
    dims_key(provider, model, project, team, cost_center, feature, environment, customer, key_name),
    provider, model, project, team, cost_center, feature, environment, customer, key_name
FROM usage_events;

INSERT INTO rollup_dims (dims_key, provider, model, project, team, cost_center, feature, environment, key_name)
SELECT DISTINCT
    dims_key(provider, model, project, team, cost_center, feature, environment, key_name),
    provider, model, project, team, cost_center, feature, environment, key_name
FROM usage_events;

INSERT INTO rollup_hourly
SELECT bucket, dims_id, cost_nanos(cost), cost_attos(cost), cost_rest(cost), requests, input_tokens,
    cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
    unpriced_requests, estimated_requests, error_requests
FROM (
    SELECT
        substr(e.ts, 1, 13) AS bucket,
        d.id AS dims_id,
        decimal_sum(e.cost_usd) AS cost,
        count(*) AS requests,
        sum(e.input_tokens) AS input_tokens,
        sum(e.cached_input_tokens) AS cached_input_tokens,
        sum(e.cache_write_tokens) AS cache_write_tokens,
        sum(e.cache_write_1h_tokens) AS cache_write_1h_tokens,
        sum(e.output_tokens) AS output_tokens,
        sum(e.reasoning_tokens) AS reasoning_tokens,
        count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced_requests,
        count(*) FILTER (WHERE e.estimated) AS estimated_requests,
        count(*) FILTER (WHERE e.status = 'error') AS error_requests
    FROM usage_events e
    JOIN rollup_dims d ON d.dims_key = dims_key(e.provider, e.model, e.project, e.team, e.cost_center, e.feature,
        e.environment, e.customer, e.key_name)
    GROUP BY 1, 2
);

-- A day's nanos and attos: the attos carried into nanos, as the upsert adds them.
INSERT INTO rollup_daily
SELECT substr(bucket, 1, 10), dims_id, sum(cost_nanos) + sum(cost_attos) / 1000000000,
    sum(cost_attos) % 1000000000,
    CASE WHEN count(cost_rest) = 0 THEN NULL ELSE decimal_sum(cost_rest) END,
    sum(requests), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens),
    sum(output_tokens), sum(reasoning_tokens), sum(unpriced_requests), sum(estimated_requests), sum(error_requests)
FROM rollup_hourly
GROUP BY 1, 2;

INSERT INTO rollup_daily_lean
SELECT r.bucket, lean.id, sum(r.cost_nanos) + sum(r.cost_attos) / 1000000000, sum(r.cost_attos) % 1000000000,
    CASE WHEN count(r.cost_rest) = 0 THEN NULL ELSE decimal_sum(r.cost_rest) END,
    sum(r.requests), sum(r.input_tokens), sum(r.cached_input_tokens), sum(r.cache_write_tokens),
    sum(r.cache_write_1h_tokens), sum(r.output_tokens), sum(r.reasoning_tokens), sum(r.unpriced_requests),
    sum(r.estimated_requests), sum(r.error_requests)
FROM rollup_daily r
JOIN rollup_dims d ON d.id = r.dims_id
JOIN rollup_dims lean ON lean.dims_key = dims_key(d.provider, d.model, d.project, d.team, d.cost_center, d.feature,
    d.environment, d.key_name)
GROUP BY 1, 2;
