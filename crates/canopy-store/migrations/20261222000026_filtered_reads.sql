-- Indexes for reads that took a range of one index and filtered it (issue 13;
-- the plans test now flags a filter after an index range as a walk):
--
-- Requests, newest first, by each combination of filters the lists give: a
-- workspace's (all, or in one state: the pending count too), a project's
-- pending ones (its access page), and the installation's (all, or one state).
-- A page took `(state, requested_at)` and filtered every workspace's requests.
DROP INDEX role_requests_workspace;
DROP INDEX role_requests_state;
CREATE INDEX role_requests_workspace ON role_requests (workspace_id, state, requested_at, id);
CREATE INDEX role_requests_workspace_all ON role_requests (workspace_id, requested_at, id);
CREATE INDEX role_requests_project ON role_requests (project_id, state, requested_at, id);
CREATE INDEX role_requests_state ON role_requests (state, requested_at, id);
CREATE INDEX role_requests_time ON role_requests (requested_at, id);

-- A workspace's managers (told of requests, emergencies and soon-expiring
-- access): its owners and managers, without reading every member.
CREATE INDEX workspace_members_role ON workspace_members (workspace_id, role, user_id);

-- The soon-expiring notices not yet sent: a binding leaves this index once
-- its notice is out, so the job does not read again, at every pass, every
-- binding it told of already.
CREATE INDEX bindings_notice ON bindings (expires_at, id) WHERE expiry_notice_at IS NULL AND expires_at IS NOT NULL;
