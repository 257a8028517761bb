-- Federation: pinned peer keys and link state, peer tokens this node issued, used
-- federation-token nonces, and this node's own key rotation history.
CREATE TABLE peers (
    server_id           TEXT PRIMARY KEY,          -- canonical server_id
    pinned_key          BLOB,                      -- 32-byte ed25519 key; NULL until first contact
    previous_key        BLOB,                      -- the key before the last rotation
    previous_retired_at INTEGER,                   -- when it was retired (unix ms)
    url                 TEXT,                      -- static route, if any
    linked              INTEGER NOT NULL DEFAULT 0,-- the operator wants a link (`peer link`)
    state               TEXT NOT NULL DEFAULT 'new',
    last_error          TEXT,
    link_expires_at     INTEGER,                   -- our peer token at that node expires (unix ms)
    updated_at          INTEGER NOT NULL
);

CREATE TABLE peer_tokens (
    token_hash BLOB PRIMARY KEY,                   -- SHA-256 of an hpeer_ token we issued
    server_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE used_nonces (
    origin     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (origin, nonce)
);

CREATE TABLE key_rotations (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    old_key BLOB NOT NULL,
    new_key BLOB NOT NULL,
    at      INTEGER NOT NULL,
    sig     BLOB NOT NULL
);
