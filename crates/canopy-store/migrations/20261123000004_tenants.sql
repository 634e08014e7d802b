-- Tenants and the replication outbox (TN3-TN5).

-- What replication does with drift found on a platform: repair it, or only
-- record it in the history.
ALTER TABLE platforms ADD COLUMN drift_policy TEXT NOT NULL DEFAULT 'repair' CHECK (drift_policy IN ('repair', 'report'));

-- A project's tenant on one platform. `name` is the stable name Canopy gives
-- it on the platform; `external_id` is the platform's own id, once created.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    platform_id TEXT NOT NULL REFERENCES platforms (id),
    landing_zone_id TEXT REFERENCES landing_zones (id),
    name TEXT NOT NULL,
    external_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'succeeded', 'failed')),
    last_error TEXT,
    last_replicated_at BIGINT,
    last_reconciled_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, platform_id)
);
CREATE INDEX tenants_platform ON tenants (platform_id);
CREATE INDEX tenants_reconciled ON tenants (last_reconciled_at);

-- The dirty-tenant outbox: at most one row per tenant. Every change that can
-- alter a tenant's access bumps `generation` in the same transaction; a
-- worker leases the row, converges the tenant on the current state, and
-- deletes the row only if the generation it worked on is still the latest.
-- `due_at` carries backoff, `not_before` the platform's Retry-After (a new
-- change makes the row due at once, but never before `not_before`).
CREATE TABLE tenant_work (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    due_at BIGINT NOT NULL,
    not_before BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    leased_by TEXT,
    lease_until BIGINT
);
CREATE INDEX tenant_work_due ON tenant_work (priority, due_at);

-- What Canopy applied in each tenant: the platform account and role. A grant
-- is written before the platform is called (applied_at NULL: pending) and
-- confirmed after, so a change Canopy makes is told from drift made outside
-- it (a confirmed assignment gone missing), even across a crash.
CREATE TABLE tenant_assignments (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    platform_role TEXT NOT NULL,
    applied_at BIGINT,
    PRIMARY KEY (tenant_id, account, platform_role)
);

-- Every revocation the platform confirmed, with the instant it did.
CREATE TABLE tenant_revocations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account TEXT NOT NULL,
    platform_role TEXT NOT NULL,
    confirmed_at BIGINT NOT NULL
);
CREATE INDEX tenant_revocations_account ON tenant_revocations (account, confirmed_at);
