-- Provider batch jobs created through the gateway (OpenAI /v1/batches, Anthropic
-- /v1/messages/batches): who created each, so its results, fetched later and maybe by another
-- key, are recorded as the creator's spend. created_at is the instant the gateway accepted the
-- batch: its results are priced and dated at it. OpenAI's results come as an output file:
-- output_file_id / error_file_id, learned from the batch objects the gateway relays, lead from
-- a file's content back to its batch. IF NOT EXISTS: a SQLite ledger rebuilt without
-- schema_migrations runs every migration after 0003 again.
CREATE TABLE IF NOT EXISTS batches (
    provider {text} NOT NULL,
    batch_id {text} NOT NULL,
    created_at {timestamp} NOT NULL,
    endpoint {text},
    key_name {text},
    project {text},
    team {text},
    cost_center {text},
    environment {text},
    feature {text},
    customer {text},
    trace_id {text},
    tags {json},
    output_file_id {text},
    error_file_id {text},
    PRIMARY KEY (provider, batch_id)
);
CREATE INDEX IF NOT EXISTS batches_output_file ON batches (provider, output_file_id);
CREATE INDEX IF NOT EXISTS batches_error_file ON batches (provider, error_file_id);
