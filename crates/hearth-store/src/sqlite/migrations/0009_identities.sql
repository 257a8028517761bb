-- Accounts of external identity providers (GetJWT): one row per (provider, subject), kept
-- apart from local e-mail accounts unless a provider links by verified e-mail.
CREATE TABLE identities (
    provider   TEXT NOT NULL,                      -- [[oidc.providers]] id
    subject    TEXT NOT NULL,                      -- the provider's account id
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
