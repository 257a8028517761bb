-- An account's passkeys (WebAuthn credentials): the public key, counter and flags as the
-- domain serialises them; a credential id belongs to one account.
CREATE TABLE passkeys (
    id            BIGINT PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys(user_id, id);
