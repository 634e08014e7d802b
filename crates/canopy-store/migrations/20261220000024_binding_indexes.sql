-- A binding is written to fewer indexes (issue 13: a binding write touched
-- ten B-trees, the table and nine indexes, and most of an add's time was
-- writing their pages to the WAL).
--
-- * A binding names a user or a group, never both, and most never expire,
--   yet every binding had an entry in the group index, the user index, both
--   uniqueness indexes and all three expiration indexes, NULL keys included.
--   Each index now holds the bindings its queries can find: the subject
--   indexes `WHERE user_id IS NOT NULL` (or group_id), the expiration indexes
--   `WHERE expires_at IS NOT NULL`. A query's `user_id = $1` or
--   `expires_at <= $1` implies the condition, so both backends still use
--   them (SQLite's rule for partial indexes; PostgreSQL's predicate proof).
-- * Uniqueness of (project, subject, role) is checked through indexes that
--   lead with the subject, (user_id, project_id, role_id), so they also
--   answer "this user's bindings" and the separate user and group indexes
--   go: NULLs are distinct in a unique index, so the partial indexes refuse
--   exactly what the two UNIQUE constraints refused.
-- * `workspace_id` is the project's workspace, copied so that a workspace's
--   expired access is read through one index; it has no foreign key of its
--   own (a workspace's deletion removes its projects, and a project's its
--   bindings), so that its index may be partial: a cascade on it would have
--   walked every binding without one.
-- SQLite cannot drop a table's UNIQUE constraint or foreign key: the table
-- is rebuilt (nothing references bindings).

CREATE TABLE bindings_v2 (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT REFERENCES user_groups (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES project_roles (id),
    expires_at BIGINT,
    justification TEXT,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    ended_at BIGINT,
    expiry_notice_at BIGINT,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
INSERT INTO bindings_v2 (id, project_id, workspace_id, user_id, group_id, role_id, expires_at, justification,
    granted_by, granted_at, ended_at, expiry_notice_at)
SELECT b.id, b.project_id, COALESCE(b.workspace_id, (SELECT p.workspace_id FROM projects p WHERE p.id = b.project_id)),
    b.user_id, b.group_id, b.role_id, b.expires_at, b.justification, b.granted_by, b.granted_at, b.ended_at,
    b.expiry_notice_at
FROM bindings b;
DROP TABLE bindings;
ALTER TABLE bindings_v2 RENAME TO bindings;

CREATE UNIQUE INDEX bindings_user ON bindings (user_id, project_id, role_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX bindings_group ON bindings (group_id, project_id, role_id) WHERE group_id IS NOT NULL;
CREATE INDEX bindings_page ON bindings (project_id, id);
CREATE INDEX bindings_workspace_expiry ON bindings (workspace_id, expires_at, id) WHERE expires_at IS NOT NULL;
CREATE INDEX bindings_expiry ON bindings (expires_at, id) WHERE expires_at IS NOT NULL;
CREATE INDEX bindings_due ON bindings (expires_at, id) WHERE ended_at IS NULL AND expires_at IS NOT NULL;
