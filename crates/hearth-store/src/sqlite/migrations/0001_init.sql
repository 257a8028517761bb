-- Accounts, sessions, e-mail codes, the mail outbox and node-local secrets.
CREATE TABLE users (
    id              INTEGER PRIMARY KEY,           -- snowflake
    email           TEXT UNIQUE COLLATE NOCASE,    -- NULL for guests and foreign users
    name            TEXT NOT NULL,
    password_hash   TEXT,                          -- argon2id PHC string; NULL: no password
    email_verified  INTEGER NOT NULL DEFAULT 0,
    home_server     TEXT,                          -- NULL: a local account
    remote_user_id  INTEGER,                       -- the user's id on home_server
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,                       -- unix ms
    created_at      INTEGER NOT NULL,
    UNIQUE (home_server, remote_user_id)
);

CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,            -- snowflake
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash     BLOB NOT NULL UNIQUE,           -- SHA-256 of the bearer token
    client_id      INTEGER NOT NULL DEFAULT 0,
    device_type    TEXT NOT NULL DEFAULT '',
    device_version TEXT NOT NULL DEFAULT '',
    app_name       TEXT NOT NULL DEFAULT '',
    app_version    TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    last_active    INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL                -- absolute expiry, unix ms
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE email_codes (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,                      -- verify_email | reset_password
    code_mac   BLOB NOT NULL,                      -- HMAC-SHA256(node secret, user|purpose|code)
    expires_at INTEGER NOT NULL,
    tries_left INTEGER NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE node_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
