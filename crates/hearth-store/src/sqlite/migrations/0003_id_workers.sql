-- Snowflake worker leases: each process that makes ids (the node, each CLI command) holds
-- its own worker number, so two writers never mint the same id.
CREATE TABLE id_workers (
    worker     INTEGER PRIMARY KEY,                -- 0..1023
    holder     TEXT NOT NULL,                      -- who holds it (process description)
    expires_at INTEGER NOT NULL                    -- unix ms; an expired lease is free
);
