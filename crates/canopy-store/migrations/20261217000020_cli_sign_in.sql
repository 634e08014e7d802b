-- `canopy login --sso` (ID1): a sign-in through the provider started for the
-- command line names the loopback port the CLI listens on and the PKCE
-- challenge of a verifier only the CLI holds. The callback then hands the
-- CLI a one-time code (kept here by its hash, for two minutes), which only
-- that verifier redeems for a session token.
ALTER TABLE oidc_logins ADD COLUMN cli_port BIGINT;
ALTER TABLE oidc_logins ADD COLUMN cli_challenge TEXT;

CREATE TABLE cli_grants (
    code_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    challenge TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX cli_grants_by_expiry ON cli_grants (expires_at);
