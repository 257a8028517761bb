-- Revocation across nodes (DESIGN.md §4.7).
-- Home side: the nodes a federation token was signed for, per home session (or personal
-- access token) that signed it.
CREATE TABLE federation_grants (
    home_session INTEGER NOT NULL,   -- a session's or personal access token's id
    peer         TEXT NOT NULL,      -- the server_id the token was for
    user_id      INTEGER NOT NULL,
    PRIMARY KEY (home_session, peer)
) WITHOUT ROWID;

-- The outbox of notices. The triggers fill it in the write that deletes a session or token,
-- whichever path deletes it (sign-out, revocation, reset, account deletion's cascade), so
-- an ended session is never forgotten.
CREATE TABLE revocation_notices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    peer         TEXT NOT NULL,
    user_id      INTEGER NOT NULL,
    home_session INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,   -- unix ms
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX revocation_notices_due ON revocation_notices(next_at);

CREATE TRIGGER sessions_end_federated AFTER DELETE ON sessions
WHEN EXISTS (SELECT 1 FROM federation_grants WHERE home_session = OLD.id)
BEGIN
    INSERT INTO revocation_notices (peer, user_id, home_session, created_at)
        SELECT peer, user_id, home_session, CAST(strftime('%s', 'now') AS INTEGER) * 1000
        FROM federation_grants WHERE home_session = OLD.id;
    DELETE FROM federation_grants WHERE home_session = OLD.id;
END;

CREATE TRIGGER access_tokens_end_federated AFTER DELETE ON access_tokens
WHEN EXISTS (SELECT 1 FROM federation_grants WHERE home_session = OLD.id)
BEGIN
    INSERT INTO revocation_notices (peer, user_id, home_session, created_at)
        SELECT peer, user_id, home_session, CAST(strftime('%s', 'now') AS INTEGER) * 1000
        FROM federation_grants WHERE home_session = OLD.id;
    DELETE FROM federation_grants WHERE home_session = OLD.id;
END;

-- Receiving side: which home session each foreign session came from, and the home sessions
-- their nodes said ended (so a notice applies once and a token from an ended session is
-- refused).
CREATE TABLE foreign_sessions (
    session_id   INTEGER PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    origin       TEXT NOT NULL,
    home_session INTEGER NOT NULL
);
CREATE INDEX foreign_sessions_by_home ON foreign_sessions(origin, home_session);

CREATE TABLE ended_home_sessions (
    origin       TEXT NOT NULL,
    home_session INTEGER NOT NULL,
    keep_until   INTEGER NOT NULL,
    PRIMARY KEY (origin, home_session)
) WITHOUT ROWID;
CREATE INDEX ended_home_sessions_by_age ON ended_home_sessions(keep_until);
