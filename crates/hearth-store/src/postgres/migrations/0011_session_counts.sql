-- How many session rows each user holds, kept by the triggers below in the statement that
-- adds or removes them (whichever path: a sign-out, a cap, a sweep, a cascade). A password
-- sign-in at the account's cap of 1,000 counted them by walking the user's index entries,
-- each needing a heap visit while the sessions churn: the most of its database time.
-- Live sessions are this count less the expired rows not swept yet, which the index below
-- finds by range.
CREATE TABLE session_counts (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    held    BIGINT NOT NULL
);
CREATE INDEX sessions_by_user_expiry ON sessions (user_id, expires_at);

CREATE FUNCTION hearth_count_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO session_counts AS c (user_id, held)
        SELECT user_id, count(*) FROM added GROUP BY user_id ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET held = c.held + excluded.held;
    ELSE
        UPDATE session_counts c SET held = c.held - g.n
        FROM (SELECT user_id, count(*) AS n FROM removed GROUP BY user_id) g
        WHERE c.user_id = g.user_id;
    END IF;
    RETURN NULL;
END
$$;
-- The triggers first: they lock the table against writers until this commits, so the
-- counts below miss no row.
CREATE TRIGGER sessions_counted_in AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION hearth_count_sessions();
CREATE TRIGGER sessions_counted_out AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION hearth_count_sessions();
INSERT INTO session_counts (user_id, held)
SELECT user_id, count(*) FROM sessions GROUP BY user_id;
