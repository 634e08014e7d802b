-- A tenant's name on its platform is unique there: two tenants never share
-- one cloud project, account or namespace.
CREATE UNIQUE INDEX tenants_platform_name ON tenants (platform_id, name);
