-- Users of the dashboard and the admin API, their roles, sessions and personal tokens, the
-- failed logins throttling counts, and the server's own secrets (spendgate/access/).
-- IF NOT EXISTS: a SQLite ledger that lost schema_migrations (one from before it existed, as
-- tests/test_rollups_retention.py rebuilds it) runs every migration again.

CREATE TABLE IF NOT EXISTS users (
    name text PRIMARY KEY,
    password_hash text NOT NULL,  -- argon2id, with its parameters and salt
    is_admin {bool} NOT NULL,
    disabled {bool} NOT NULL,
    created_at {timestamp} NOT NULL,
    password_changed_at {timestamp} NOT NULL
);

-- A role on a project or on a team (every project of the team). Projects and teams are never
-- deleted, so the name needs no foreign key (it could not have one to either table).
CREATE TABLE IF NOT EXISTS user_grants (
    user_name text NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('project', 'team')),
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'manager')),
    created_at {timestamp} NOT NULL,
    PRIMARY KEY (user_name, kind, name)
);
CREATE INDEX IF NOT EXISTS user_grants_target ON user_grants (kind, name);

-- Server-side sessions: only the SHA-256 of the session id is kept (the cookie holds the id).
CREATE TABLE IF NOT EXISTS user_sessions (
    id_hash text PRIMARY KEY,
    user_name text NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at {timestamp} NOT NULL,
    last_seen_at {timestamp} NOT NULL
);
CREATE INDEX IF NOT EXISTS user_sessions_user ON user_sessions (user_name);

-- Personal API tokens (sgu-…): shown once, kept as SHA-256, revocable.
CREATE TABLE IF NOT EXISTS user_tokens (
    token_hash text PRIMARY KEY,
    user_name text NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name text NOT NULL,
    prefix text NOT NULL,
    created_at {timestamp} NOT NULL,
    last_used_at {timestamp},
    revoked_at {timestamp},
    UNIQUE (user_name, name)
);

-- Failed logins in a row, per user name ('user') and per client address ('ip').
CREATE TABLE IF NOT EXISTS login_failures (
    kind text NOT NULL CHECK (kind IN ('user', 'ip')),
    subject text NOT NULL,
    failures integer NOT NULL,
    last_failure_at {timestamp} NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- Secrets the server makes for itself when none is configured (the session signing key when
-- SPENDGATE_SECRET_KEY is unset), made once so that every replica uses the same.
CREATE TABLE IF NOT EXISTS server_secrets (
    name text PRIMARY KEY,
    value text NOT NULL,
    created_at {timestamp} NOT NULL
);
