-- An account's second factor: a TOTP secret sealed by the domain (never in the clear), the
-- last time step accepted (each code once), and the recovery codes' MACs with used flags.
CREATE TABLE second_factors (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BLOB NOT NULL,
    enabled    INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    recovery   BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
