-- Shared-cost allocation rules (spendgate/finance/allocation.py): named, applied in creation
-- order by `report --allocated` and the finance report. targets: a JSON object owner ->
-- percent (text, exact) for a fixed rule; owner -> "0" for the owners proportional/even may
-- reach (empty: all). IF NOT EXISTS: a SQLite ledger rebuilt without schema_migrations runs
-- every migration after 0003 again.
CREATE TABLE IF NOT EXISTS allocation_rules (
    name {text} PRIMARY KEY,
    pool {text} NOT NULL,
    method {text} NOT NULL,
    by_dimension {text} NOT NULL,
    targets {json},
    created_at {timestamp} NOT NULL
);
