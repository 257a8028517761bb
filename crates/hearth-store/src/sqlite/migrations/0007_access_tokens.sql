-- Personal access tokens (tokens.v1). Only the SHA-256 of a value is kept; `uuid` is the
-- id clients see and survives a regeneration.
CREATE TABLE access_tokens (
    id           INTEGER PRIMARY KEY,              -- snowflake
    uuid         TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,             -- SHA-256 of the hpat_ value
    scopes       TEXT NOT NULL,                    -- scope names, space-separated
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,                 -- unix ms
    last_used_at INTEGER,                          -- written at most once a minute
    last_used_ip TEXT
);
CREATE INDEX access_tokens_by_user ON access_tokens(user_id);

-- A session made from a token (TokenAuthorization) carries its scopes and ends with it.
ALTER TABLE sessions ADD COLUMN scopes TEXT;     -- NULL: every scope (signed in)
ALTER TABLE sessions ADD COLUMN access_token_id INTEGER;
CREATE INDEX sessions_by_access_token ON sessions(access_token_id)
    WHERE access_token_id IS NOT NULL;
