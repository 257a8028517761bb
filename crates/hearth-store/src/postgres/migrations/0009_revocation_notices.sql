-- Revocation across nodes (DESIGN.md §4.7); the SQLite migration 0017 says what each table is.
CREATE TABLE federation_grants (
    home_session BIGINT NOT NULL,
    peer         TEXT NOT NULL,
    user_id      BIGINT NOT NULL,
    PRIMARY KEY (home_session, peer)
);

CREATE TABLE revocation_notices (
    id           BIGSERIAL PRIMARY KEY,
    peer         TEXT NOT NULL,
    user_id      BIGINT NOT NULL,
    home_session BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX revocation_notices_due ON revocation_notices(next_at);

-- Moves the ended credential's grants into the outbox, in the write that deleted it.
CREATE FUNCTION hearth_grants_to_notices() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        DELETE FROM federation_grants WHERE home_session = OLD.id
        RETURNING peer, user_id, home_session
    )
    INSERT INTO revocation_notices (peer, user_id, home_session, created_at)
    SELECT peer, user_id, home_session, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
    FROM gone;
    RETURN OLD;
END
$$;
CREATE TRIGGER sessions_end_federated AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION hearth_grants_to_notices();
CREATE TRIGGER access_tokens_end_federated AFTER DELETE ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION hearth_grants_to_notices();

CREATE TABLE foreign_sessions (
    session_id   BIGINT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    origin       TEXT NOT NULL,
    home_session BIGINT NOT NULL
);
CREATE INDEX foreign_sessions_by_home ON foreign_sessions(origin, home_session);

CREATE TABLE ended_home_sessions (
    origin       TEXT NOT NULL,
    home_session BIGINT NOT NULL,
    keep_until   BIGINT NOT NULL,
    PRIMARY KEY (origin, home_session)
);
CREATE INDEX ended_home_sessions_by_age ON ended_home_sessions(keep_until);
