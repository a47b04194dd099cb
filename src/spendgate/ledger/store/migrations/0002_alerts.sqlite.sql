-- Webhooks (configuration), budget alerts and their deliveries (operational records), as
-- SQLite ledgers have had them (see 0002_alerts.postgresql.sql for what they mean).

CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    secret TEXT,
    format TEXT NOT NULL CHECK (format IN ('json', 'slack')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,  -- insertion order: ids made in the same millisecond do not sort
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    budget TEXT NOT NULL,
    window_key TEXT NOT NULL,
    threshold INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (kind, budget, window_key, threshold)
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT,
    last_error TEXT,
    delivered_at TEXT,
    PRIMARY KEY (alert_id, webhook_id)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alert_deliveries_webhook ON alert_deliveries (webhook_id);
