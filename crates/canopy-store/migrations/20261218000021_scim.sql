-- SCIM 2.0 provisioning (ID2): accounts and groups an identity provider
-- made and owns. Each row links a Canopy account or group to its SCIM
-- resource: the id is Canopy's own (users.id, user_groups.id).
--
-- `document` is the resource as the provider last wrote it, without what
-- Canopy answers from its own records (id, meta, userName, externalId,
-- active; a group's displayName and members), as JSON of at most 64 KiB.
-- `version` grows at every change of what SCIM shows (its ETag).
CREATE TABLE scim_users (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    -- userName is not case-exact (RFC 7643): unique and found in lowercase
    user_name_key TEXT NOT NULL UNIQUE,
    external_id TEXT,
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX scim_users_by_external_id ON scim_users (external_id);

CREATE TABLE scim_groups (
    group_id TEXT PRIMARY KEY REFERENCES user_groups (id) ON DELETE CASCADE,
    -- displayName, unique among provisioned groups, found in lowercase
    display_name_key TEXT NOT NULL UNIQUE,
    external_id TEXT,
    document TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX scim_groups_by_external_id ON scim_groups (external_id);
