-- A sign-in finds its account by lower(email): without an index on that expression every
-- sign-in read the whole users table.
CREATE INDEX users_by_lower_email ON users (lower(email));
-- The session caps count a user's live sessions and find the least active ones on every
-- sign-in: with the expiry and the token in the index both are index-only scans, instead
-- of a heap visit per session (up to 1,000 for one account).
CREATE INDEX sessions_by_user_activity_v2 ON sessions (user_id, last_active, id)
    INCLUDE (expires_at, access_token_id);
DROP INDEX sessions_by_user_activity;
ALTER INDEX sessions_by_user_activity_v2 RENAME TO sessions_by_user_activity;
