-- spendgate on SQLite: teams, projects, keys, the usage ledger, budgets, limits, policies.
-- Written before the two stores were one: the schema SQLite ledgers have had since their first
-- version, kept as it was (CREATE … IF NOT EXISTS: a ledger made before schema_migrations
-- existed runs it again harmlessly). Money is exact decimal text, times fixed-width UTC text.

CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY,
    cost_center TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    team TEXT NOT NULL REFERENCES teams(name),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gateway_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    environment TEXT NOT NULL,
    project TEXT REFERENCES projects(name),
    locked INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS usage_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    project TEXT,
    team TEXT,
    cost_center TEXT,
    feature TEXT,
    environment TEXT,
    customer TEXT,
    key_name TEXT,
    trace_id TEXT,
    tags TEXT,
    input_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT,
    rates TEXT,
    price_source TEXT,
    estimated INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    upstream_request_id TEXT
);
-- Raw events are read by time range only: reports by trace or tag, the partial hours at the
-- edges of budget windows, the newest events, and retention's deletes. Everything else is
-- answered from rollups, so no index per budget scope is needed (see bench_ledger_scale).
CREATE INDEX IF NOT EXISTS usage_events_ts ON usage_events (ts);

CREATE TABLE IF NOT EXISTS budgets (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    limit_usd TEXT NOT NULL,
    period TEXT NOT NULL,
    timezone TEXT NOT NULL,
    alert_at TEXT NOT NULL,
    soft INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_limits (
    scope TEXT PRIMARY KEY,
    rpm INTEGER,
    tpm INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
    environment TEXT PRIMARY KEY,
    dimensions TEXT NOT NULL,
    created_at TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('config_version', 0);
