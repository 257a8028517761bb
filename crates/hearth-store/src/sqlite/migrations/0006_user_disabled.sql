-- Accounts an operator disabled (`hearth user disable`): they cannot sign in.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
