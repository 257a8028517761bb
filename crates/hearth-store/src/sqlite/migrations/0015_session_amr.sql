-- How each session was made (RFC 8176 `amr` values, space-separated); empty for older ones.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
