-- Sign-in through an OpenID Connect provider (ID1).
--
-- A person signing in through a provider is matched by the provider's
-- issuer and the subject it names them by, never by e-mail alone.
CREATE TABLE user_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_by_user ON user_identities (user_id);

-- A sign-in sent to the provider and not yet back: found by the hash of its
-- `state`, taken (deleted) by the one callback that may use it, so that a
-- replayed callback finds nothing. It holds the PKCE verifier and the
-- nonce the ID token must carry, and the page to go back to.
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    pkce_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    next_path TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_logins_by_expiry ON oidc_logins (expires_at);
