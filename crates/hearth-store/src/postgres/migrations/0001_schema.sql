-- Hearth's schema on PostgreSQL: the same tables and meaning as the SQLite migrations
-- 0001-0009 (ids are snowflakes in BIGINT, times unix ms, hashes BYTEA).
CREATE TABLE users (
    id             BIGINT PRIMARY KEY,
    email          TEXT UNIQUE,                    -- canonical (lower-case); NULL for guests
    name           TEXT NOT NULL,
    password_hash  TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    home_server    TEXT,
    remote_user_id BIGINT,
    created_at     BIGINT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (home_server, remote_user_id)
);

CREATE TABLE sessions (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash      BYTEA NOT NULL UNIQUE,
    client_id       BIGINT NOT NULL DEFAULT 0,
    device_type     TEXT NOT NULL DEFAULT '',
    device_version  TEXT NOT NULL DEFAULT '',
    app_name        TEXT NOT NULL DEFAULT '',
    app_version     TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    last_active     BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    scopes          TEXT,
    access_token_id BIGINT
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_access_token ON sessions(access_token_id) WHERE access_token_id IS NOT NULL;

CREATE TABLE email_codes (
    user_id          BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose          TEXT NOT NULL,
    code_mac         BYTEA NOT NULL,
    expires_at       BIGINT NOT NULL,
    tries_left       BIGINT NOT NULL,
    issued_in_window BIGINT NOT NULL DEFAULT 1,
    window_start     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, purpose)
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox(next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE node_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE peers (
    server_id           TEXT PRIMARY KEY,
    pinned_key          BYTEA,
    previous_key        BYTEA,
    previous_retired_at BIGINT,
    url                 TEXT,
    linked              BOOLEAN NOT NULL DEFAULT FALSE,
    state               TEXT NOT NULL DEFAULT 'new',
    last_error          TEXT,
    link_expires_at     BIGINT,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE peer_tokens (
    token_hash BYTEA PRIMARY KEY,
    server_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE used_nonces (
    origin     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (origin, nonce)
);

CREATE TABLE key_rotations (
    seq     BIGSERIAL PRIMARY KEY,
    old_key BYTEA NOT NULL,
    new_key BYTEA NOT NULL,
    at      BIGINT NOT NULL,
    sig     BYTEA NOT NULL
);

CREATE TABLE id_workers (
    worker     BIGINT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sign_in_throttle (
    email           TEXT NOT NULL,
    client          TEXT NOT NULL,
    failures        BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    in_flight       BIGINT NOT NULL DEFAULT 0,
    in_flight_since BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (email, client)
);

CREATE TABLE access_tokens (
    id           BIGINT PRIMARY KEY,
    uuid         TEXT NOT NULL UNIQUE,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    last_used_ip TEXT
);
CREATE INDEX access_tokens_by_user ON access_tokens(user_id);

CREATE TABLE invites (
    id         BIGINT PRIMARY KEY,
    code_hash  BYTEA NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    creator_id BIGINT NOT NULL,
    target     TEXT NOT NULL,
    target_id  BIGINT NOT NULL,
    max_uses   BIGINT,
    uses       BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX invites_by_creator ON invites(creator_id);

CREATE TABLE friendships (
    user_a     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_b     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_a, user_b)
);

CREATE TABLE groups (
    id         BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    owner      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE communities (
    id         BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    owner      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE TABLE community_members (
    community_id BIGINT NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (community_id, user_id)
);

CREATE TABLE identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
