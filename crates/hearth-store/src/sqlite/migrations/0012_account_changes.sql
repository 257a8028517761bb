-- Changes an account holder asked for that wait: a new e-mail address until the code mailed
-- to it is used (ChangeEmail), a deletion until its grace period ends (DeleteAccount).
CREATE TABLE account_changes (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    pending_email TEXT UNIQUE,
    delete_at     INTEGER
);
CREATE INDEX account_changes_delete_at ON account_changes(delete_at) WHERE delete_at IS NOT NULL;
