-- Background jobs that must run once per period across every replica of the gateway (the daily
-- reconciliation drift check): the first replica to insert (job, run_key) runs it, the others
-- find the row and skip. IF NOT EXISTS: a SQLite ledger rebuilt without schema_migrations runs
-- every migration after 0003 again.
CREATE TABLE IF NOT EXISTS job_runs (
    job {text} NOT NULL,
    run_key {text} NOT NULL,
    claimed_at {timestamp} NOT NULL,
    PRIMARY KEY (job, run_key)
);
