-- Canopy foundation schema. Portable SQL: it runs unchanged on SQLite and
-- PostgreSQL. Ids are UUID text, times are BIGINT microseconds since the Unix
-- epoch (UTC), flags are BIGINT 0/1 (the sqlx Any driver has no portable
-- boolean or timestamp type).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    password_hash TEXT,
    active BIGINT NOT NULL CHECK (active IN (0, 1)),
    failed_sign_ins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE user_installation_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'platform_engineer')),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_by_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE TABLE user_groups (
    id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- A member is a user or a group: exactly one of user_id, group_id is set.
CREATE TABLE workspace_members (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT REFERENCES user_groups (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('workspace_owner', 'workspace_manager', 'workspace_member')),
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    UNIQUE (workspace_id, user_id),
    UNIQUE (workspace_id, group_id)
);
CREATE INDEX workspace_members_user ON workspace_members (user_id);
CREATE INDEX workspace_members_group ON workspace_members (group_id);

-- An invitation of an e-mail address no account has yet (WS3).
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('workspace_owner', 'workspace_manager', 'workspace_member')),
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (workspace_id, email)
);
CREATE INDEX invitations_email ON invitations (email);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    identifier TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- filled by the payment-method issue (PM1, PM2); no payment methods exist yet
    payment_method_id TEXT,
    substitute_payment_method_id TEXT,
    -- JSON object of tag values, validated against tag definitions (PR3)
    tags TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    UNIQUE (workspace_id, identifier)
);

CREATE TABLE project_roles (
    id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- display order, from least to most privileged by default
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE bindings (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT REFERENCES user_groups (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES project_roles (id),
    expires_at BIGINT,
    justification TEXT,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    UNIQUE (project_id, user_id, role_id),
    UNIQUE (project_id, group_id, role_id)
);
CREATE INDEX bindings_user ON bindings (user_id);
CREATE INDEX bindings_group ON bindings (group_id);
CREATE INDEX bindings_expiry ON bindings (expires_at);

-- One hash chain per workspace (chain = workspace id) and one for the
-- installation. The head row serialises appends and records the last link,
-- so that removing events from the end is detected too.
CREATE TABLE history_chains (
    chain TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);

CREATE TABLE history_events (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL REFERENCES history_chains (chain),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    initiator_kind TEXT NOT NULL,
    initiator_id TEXT NOT NULL,
    initiator_name TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX history_events_at ON history_events (chain, at);

INSERT INTO history_chains (chain, label, last_seq, last_hash)
VALUES ('installation', 'installation', 0, '0000000000000000000000000000000000000000000000000000000000000000');
