-- Emergency revocations (AD4): who was revoked, by whom and why, what was
-- removed, and which assignments the person held in which tenant, so the
-- answer can show per tenant when the platform confirmed each removal
-- (tenant_revocations). Snapshots: the names stay readable after the
-- workspaces, projects or tenants they name are gone.
CREATE TABLE emergency_revocations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    username TEXT NOT NULL,
    justification TEXT,
    initiator TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    removed TEXT NOT NULL
);
CREATE INDEX emergency_revocations_user ON emergency_revocations (username, requested_at);

CREATE TABLE emergency_revocation_assignments (
    revocation_id TEXT NOT NULL REFERENCES emergency_revocations (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    project TEXT NOT NULL,
    platform TEXT NOT NULL,
    external_id TEXT,
    platform_role TEXT NOT NULL,
    PRIMARY KEY (revocation_id, tenant_id, platform_role)
);
