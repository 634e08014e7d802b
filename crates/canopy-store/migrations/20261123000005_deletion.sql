-- Deleting tenants and projects (DL1-DL5). A tenant's deletion state is NULL
-- while it is not being deleted; resources lists what the platform reported
-- in it (automatic platforms), as a JSON array of strings.
ALTER TABLE tenants ADD COLUMN deletion TEXT CHECK (deletion IN ('requested', 'deleting', 'awaiting_engineer', 'declined'));
ALTER TABLE tenants ADD COLUMN deletion_resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tenants ADD COLUMN deletion_requested_at BIGINT;
-- Set while the whole project is being deleted (not just some of its tenants).
ALTER TABLE projects ADD COLUMN deletion_requested_at BIGINT;
