-- The expiry job (AC7) records when it ended a binding whose expiration
-- passed. Each binding is ended once, also when the expiration passed while
-- Canopy was stopped; an expired binding stays (the expired-access list shows
-- it and it can be extended), and a changed expiration clears the mark.
ALTER TABLE bindings ADD COLUMN ended_at BIGINT;
CREATE INDEX bindings_due ON bindings (expires_at) WHERE ended_at IS NULL;
