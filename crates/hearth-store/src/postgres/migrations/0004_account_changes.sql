-- Changes an account holder asked for that wait (as SQLite's 0012_account_changes).
CREATE TABLE account_changes (
    user_id       BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    pending_email TEXT UNIQUE,
    delete_at     BIGINT
);
CREATE INDEX account_changes_delete_at ON account_changes(delete_at) WHERE delete_at IS NOT NULL;
