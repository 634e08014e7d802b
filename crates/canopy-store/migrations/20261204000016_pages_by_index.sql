-- Pages that cost the same whatever the size of the workspace (issue 13).
--
-- A binding carries its project's workspace (a project never moves), so a
-- workspace's expired and soon-expiring bindings are read in expiration
-- order through one index instead of through every binding of the
-- workspace.
ALTER TABLE bindings ADD COLUMN workspace_id TEXT REFERENCES workspaces (id) ON DELETE CASCADE;
UPDATE bindings SET workspace_id = (SELECT p.workspace_id FROM projects p WHERE p.id = bindings.project_id);
CREATE INDEX bindings_workspace_expiry ON bindings (workspace_id, expires_at, id);
DROP INDEX bindings_expiry;
CREATE INDEX bindings_expiry ON bindings (expires_at, id);

-- A membership carries its subject as current access sorts it
-- (`user:NAME`, `group:IDENTIFIER`; usernames and group identifiers never
-- change), so a page of current access is read in that order through one
-- index.
ALTER TABLE workspace_members ADD COLUMN subject_name TEXT;
UPDATE workspace_members SET subject_name = COALESCE(
    (SELECT 'user:' || u.username FROM users u WHERE u.id = workspace_members.user_id),
    (SELECT 'group:' || g.identifier FROM user_groups g WHERE g.id = workspace_members.group_id));
CREATE INDEX workspace_members_page ON workspace_members (workspace_id, subject_name);
