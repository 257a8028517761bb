-- Codes issued per (user, purpose) within the current hour, so issuance can be capped; a
-- row now outlives a code that ran out of tries (only a used code deletes it), so the cap
-- and the spent tries survive until the window passes.
ALTER TABLE email_codes ADD COLUMN issued_in_window INTEGER NOT NULL DEFAULT 1;
ALTER TABLE email_codes ADD COLUMN window_start INTEGER NOT NULL DEFAULT 0;
