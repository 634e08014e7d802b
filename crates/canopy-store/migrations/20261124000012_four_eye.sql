-- Installation settings (one row) and the four-eye principle (FE1-FE4).

CREATE TABLE installation_settings (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    four_eye_enabled BIGINT NOT NULL CHECK (four_eye_enabled IN (0, 1)),
    four_eye_approvals BIGINT NOT NULL,
    -- the longest access a binding may grant, in days; NULL: no maximum
    max_binding_days BIGINT,
    -- whether projects may name a substitute payment method (PM2)
    payment_substitutes BIGINT NOT NULL CHECK (payment_substitutes IN (0, 1))
);
INSERT INTO installation_settings (id, four_eye_enabled, four_eye_approvals, max_binding_days, payment_substitutes)
VALUES (1, 0, 1, NULL, 1);

-- A workspace's own four-eye setting; NULL: the installation's.
ALTER TABLE workspaces ADD COLUMN four_eye_enabled BIGINT;
ALTER TABLE workspaces ADD COLUMN four_eye_approvals BIGINT;

-- A change to a project binding waiting for approval. For add, the subject,
-- role and expiration to bind; for change, the binding and the role and
-- expiration it gets (from_* what it had); for remove, the binding as it was.
CREATE TABLE role_requests (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('add', 'change', 'remove')),
    binding_id TEXT,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT REFERENCES user_groups (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES project_roles (id) ON DELETE CASCADE,
    expires_at BIGINT,
    from_role_id TEXT REFERENCES project_roles (id) ON DELETE CASCADE,
    from_expires_at BIGINT,
    justification TEXT NOT NULL,
    approvals_required BIGINT NOT NULL,
    requested_by_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'declined', 'void')),
    decided_at BIGINT,
    decided_by TEXT,
    reason TEXT,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE INDEX role_requests_workspace ON role_requests (workspace_id, state);
CREATE INDEX role_requests_state ON role_requests (state, requested_at);

-- One row per person who approved a request: one person counts once (FE4).
CREATE TABLE role_request_approvals (
    request_id TEXT NOT NULL REFERENCES role_requests (id) ON DELETE CASCADE,
    approver_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);
