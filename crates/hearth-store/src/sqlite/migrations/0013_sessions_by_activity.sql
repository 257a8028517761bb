-- The session caps end a user's least recently active sessions: this index finds them
-- without sorting (it also serves every lookup by user, which sessions_by_user did).
CREATE INDEX sessions_by_user_activity ON sessions(user_id, last_active, id);
DROP INDEX sessions_by_user;
