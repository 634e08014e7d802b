-- A four-eye request outlives its subject and records the API key that
-- filed it (issue 11, findings 12, 13 and 17):
-- * deleting the user or group a pending request names closes the request
--   (void, with a history event) instead of deleting it with the subject, so
--   the subject columns no longer cascade, and the subject's name is kept;
-- * a request filed with an API key names the key, so the key may withdraw
--   it and the request is void once the key is gone.
-- SQLite cannot change a column's constraints: the table is rebuilt, its
-- approvals with it (dropping a table deletes the rows that reference it).

CREATE TABLE role_requests_v2 (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('add', 'change', 'remove')),
    binding_id TEXT,
    user_id TEXT,
    group_id TEXT,
    subject_name TEXT NOT NULL,
    role_id TEXT NOT NULL REFERENCES project_roles (id) ON DELETE CASCADE,
    expires_at BIGINT,
    from_role_id TEXT REFERENCES project_roles (id) ON DELETE CASCADE,
    from_expires_at BIGINT,
    justification TEXT NOT NULL,
    approvals_required BIGINT NOT NULL,
    requested_by_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_by_key_id TEXT,
    requested_at BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'declined', 'void')),
    decided_at BIGINT,
    decided_by TEXT,
    reason TEXT,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
INSERT INTO role_requests_v2 (id, workspace_id, project_id, kind, binding_id, user_id, group_id, subject_name,
    role_id, expires_at, from_role_id, from_expires_at, justification, approvals_required, requested_by_id,
    requested_by, requested_by_key_id, requested_at, state, decided_at, decided_by, reason)
SELECT q.id, q.workspace_id, q.project_id, q.kind, q.binding_id, q.user_id, q.group_id,
    COALESCE((SELECT u.username FROM users u WHERE u.id = q.user_id),
             (SELECT g.identifier FROM user_groups g WHERE g.id = q.group_id), '(deleted)'),
    q.role_id, q.expires_at, q.from_role_id, q.from_expires_at, q.justification, q.approvals_required,
    q.requested_by_id, q.requested_by, NULL, q.requested_at, q.state, q.decided_at, q.decided_by, q.reason
FROM role_requests q;

CREATE TABLE role_request_approvals_v2 (
    request_id TEXT NOT NULL REFERENCES role_requests_v2 (id) ON DELETE CASCADE,
    approver_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);
INSERT INTO role_request_approvals_v2 (request_id, approver_id, approver, approved_at)
SELECT request_id, approver_id, approver, approved_at FROM role_request_approvals;

DROP TABLE role_request_approvals;
DROP TABLE role_requests;
ALTER TABLE role_requests_v2 RENAME TO role_requests;
ALTER TABLE role_request_approvals_v2 RENAME TO role_request_approvals;
CREATE INDEX role_requests_workspace ON role_requests (workspace_id, state);
CREATE INDEX role_requests_state ON role_requests (state, requested_at);
CREATE INDEX role_requests_user ON role_requests (user_id, state);
CREATE INDEX role_requests_group ON role_requests (group_id, state);
CREATE INDEX role_requests_requester ON role_requests (requested_by_id, state);
