-- An account's second factor: a TOTP secret sealed by the domain (never in the clear), the
-- last time step accepted (each code once), and the recovery codes' MACs with used flags.
CREATE TABLE second_factors (
    user_id    BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BYTEA NOT NULL,
    enabled    BOOLEAN NOT NULL,
    last_step  BIGINT NOT NULL,
    recovery   BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
