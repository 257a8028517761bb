-- Short-lived state every node of a cluster must see (step flows), keyed by a hash and
-- sealed by the domain; rows past expires_at are ignored and swept when the space is written.
CREATE TABLE short_lived (
    space      TEXT NOT NULL,
    key        BLOB NOT NULL,
    value      BLOB NOT NULL,
    expires_at INTEGER NOT NULL,                   -- unix ms
    PRIMARY KEY (space, key)
);
