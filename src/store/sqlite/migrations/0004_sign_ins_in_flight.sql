-- The sign-in gate counts attempts in flight apart from definite failures: a burst of
-- correct sign-ins waits for a slot instead of tripping the failure delay. An in-flight
-- count older than the stale window (a crash) is ignored.
ALTER TABLE users ADD COLUMN sign_ins_in_flight INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN in_flight_since INTEGER;
