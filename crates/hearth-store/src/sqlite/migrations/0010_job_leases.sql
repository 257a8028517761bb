-- "One node runs this job": which process holds each background job (the link keeper, the
-- mail sender) until when. A lease that is not renewed expires and another node takes it.
CREATE TABLE job_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL                    -- unix ms
);
