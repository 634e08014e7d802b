-- Sign-in throttling (SE1, SE2): counters keyed by the name as typed, the
-- client address, and both (canopy_domain::signin), replacing the per-user
-- counter, which locked an account's owner out with the guesser and told
-- existing names from unknown ones.
CREATE TABLE sign_in_counters (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    locked_until BIGINT,
    last_at BIGINT NOT NULL
);
CREATE INDEX sign_in_counters_last_at ON sign_in_counters (last_at);

-- Addresses an account signed in from (the right password from one of these
-- passes an account-wide lock).
CREATE TABLE sign_in_addresses (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, address)
);

ALTER TABLE users DROP COLUMN failed_sign_ins;
ALTER TABLE users DROP COLUMN locked_until;
