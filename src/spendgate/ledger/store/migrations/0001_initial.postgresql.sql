-- spendgate on PostgreSQL: teams, projects, keys, the usage ledger, budgets, limits, policies.
-- Money is NUMERIC without a precision cap (exact, summed exactly); times are timestamptz (UTC
-- in, grouped by UTC day/month in reports); tags and rates are jsonb.

CREATE TABLE meta (
    name text PRIMARY KEY,
    value bigint NOT NULL
);
-- Bumped in the same transaction as every configuration change, so every gateway sharing
-- the database notices with one tiny query.
INSERT INTO meta (name, value) VALUES ('config_version', 0);

CREATE TABLE teams (
    name text PRIMARY KEY,
    cost_center text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    name text PRIMARY KEY,
    team text NOT NULL REFERENCES teams (name),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_keys (
    name text PRIMARY KEY,
    key_hash text NOT NULL UNIQUE,  -- only the hash of a key is ever stored
    key_prefix text NOT NULL,
    environment text NOT NULL,
    project text REFERENCES projects (name),
    locked boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- The append-only ledger. id is the event's own id (time-ordered), so a replayed event is
-- refused by the primary key (INSERT ... ON CONFLICT (id) DO NOTHING); seq only orders
-- events of the same instant.
CREATE TABLE usage_events (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    ts timestamptz NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    endpoint text NOT NULL,
    stream boolean NOT NULL,
    status text NOT NULL,
    http_status integer NOT NULL,
    project text,
    team text,
    cost_center text,
    feature text,
    environment text,
    customer text,
    key_name text,
    trace_id text,
    tags jsonb,
    input_tokens bigint NOT NULL,
    cached_input_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cache_write_1h_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    cost_usd numeric,  -- NULL: no known price (counted as unpriced, never a silent $0)
    rates jsonb,
    price_source text,
    estimated boolean NOT NULL,
    latency_ms double precision NOT NULL,
    upstream_request_id text
);
-- Every query we serve is bounded by time first: reports (--since/--until), budget spend
-- over a period window, and the newest events.
CREATE INDEX usage_events_ts ON usage_events (ts);

CREATE TABLE budgets (
    name text PRIMARY KEY,
    scope text NOT NULL,
    limit_usd numeric NOT NULL,
    period text NOT NULL,
    timezone text NOT NULL,
    alert_at integer[] NOT NULL,
    soft boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rate_limits (
    scope text PRIMARY KEY,
    rpm bigint,
    tpm bigint,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE policies (
    environment text PRIMARY KEY,
    dimensions text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
