-- Sign-in throttling keyed by the canonical e-mail address (whether or not an account has
-- it, so unknown and known addresses are throttled alike) and the client: one row per
-- (address, client IP) for the progressive delay and the attempts in flight, and one row
-- per address with client '*' for the account-wide count of consecutive failures.
CREATE TABLE sign_in_throttle (
    email           TEXT NOT NULL,
    client          TEXT NOT NULL,                 -- client IP, '' when unknown, '*' account-wide
    failures        INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,                       -- unix ms
    in_flight       INTEGER NOT NULL DEFAULT 0,
    in_flight_since INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (email, client)
);

-- The per-account counters this table replaces.
ALTER TABLE users DROP COLUMN failed_sign_ins;
ALTER TABLE users DROP COLUMN locked_until;
