-- Webhooks (configuration), budget alerts and their deliveries (operational records).
-- An alert is unique per (kind, budget, window, threshold): whichever replica records it
-- first wins, so each threshold fires once per budget period across every replica.

CREATE TABLE webhooks (
    id text PRIMARY KEY,
    url text NOT NULL UNIQUE,
    secret text,
    format text NOT NULL CHECK (format IN ('json', 'slack')),
    created_at timestamptz NOT NULL
);

CREATE TABLE alerts (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order
    id text NOT NULL UNIQUE,
    kind text NOT NULL,
    budget text NOT NULL,
    window_key text NOT NULL,
    threshold integer NOT NULL DEFAULT 0,
    payload json NOT NULL,  -- json, not jsonb: kept byte for byte, keys in their order
    created_at timestamptz NOT NULL,
    UNIQUE (kind, budget, window_key, threshold)
);

CREATE TABLE alert_deliveries (
    alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    webhook_id text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_until timestamptz,  -- the lease of whoever is sending it
    last_error text,
    delivered_at timestamptz,
    PRIMARY KEY (alert_id, webhook_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
CREATE INDEX alert_deliveries_webhook ON alert_deliveries (webhook_id);
