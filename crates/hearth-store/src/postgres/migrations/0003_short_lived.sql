-- Short-lived state every node must see (as SQLite's 0011_short_lived).
CREATE TABLE short_lived (
    space      TEXT NOT NULL,
    key        BYTEA NOT NULL,
    value      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (space, key)
);
CREATE INDEX short_lived_expiry ON short_lived(space, expires_at);
