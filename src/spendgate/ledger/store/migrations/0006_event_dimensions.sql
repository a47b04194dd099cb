-- The service tier an event was served and priced at (standard, flex, priority, batch…;
-- spendgate/usage/service_tier.py), kept on the event and as a rollup dimension so reports
-- group and filter by it from the rollups. NULL: nobody named a tier (and every event stored
-- before this migration); such an event was priced at the standard rate, and reports show it
-- as "standard" (README "Report dimensions").
ALTER TABLE usage_events ADD COLUMN service_tier {text};
ALTER TABLE rollup_dims ADD COLUMN service_tier {text};

-- A rollup_dims key encodes the tuple of values it interns (rollups/plan.py dims_key); the
-- tuples now end with the tier, so every stored key gets a NULL tier ("-") at its end, as the
-- writer now computes it. Without this, a new lean key (8 values + tier) could spell the same
-- text as an old full key (9 values) and be read back as that entry. Two steps, so no key
-- ever equals another one's while the update runs (a unique index is checked row by row):
-- "~" starts no key, then each is rewritten from its own marked text.
UPDATE rollup_dims SET dims_key = '~' || dims_key;
UPDATE rollup_dims SET dims_key = substr(dims_key, 2) || '-';
