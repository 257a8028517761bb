-- Invites (tangle.client.auth) and what they lead to: friendships, groups, communities and
-- accounts. Only the SHA-256 of a code is kept, with its first characters as a hint.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,               -- snowflake
    code_hash   BLOB NOT NULL UNIQUE,
    hint        TEXT NOT NULL,
    creator_id  INTEGER NOT NULL,                  -- 0: the operator (CLI)
    target      TEXT NOT NULL,                     -- user | group | community | registration
    target_id   INTEGER NOT NULL,
    max_uses    INTEGER,                           -- NULL: unlimited
    uses        INTEGER NOT NULL DEFAULT 0,
    expires_at  INTEGER NOT NULL,                  -- unix ms
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX invites_by_creator ON invites(creator_id);

CREATE TABLE friendships (
    user_a     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,  -- the smaller id
    user_b     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_a, user_b)
);

CREATE TABLE groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    owner      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE communities (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    owner      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE TABLE community_members (
    community_id INTEGER NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (community_id, user_id)
);
