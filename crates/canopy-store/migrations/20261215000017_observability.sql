-- What GET /metrics reads at scrape time, each through an index.
--
-- When a tenant became dirty: the first mark not yet converged. The age of
-- the oldest tenant waiting for replication is read from it. NULL for work
-- rows made before this column existed, and for holds (a lease taken to
-- revoke before a manual deletion), which wait for nothing.
ALTER TABLE tenant_work ADD COLUMN marked_at BIGINT;
CREATE INDEX tenant_work_marked ON tenant_work (marked_at);
CREATE INDEX tenant_work_lease ON tenant_work (lease_until);
-- The mails waiting and the oldest of them.
CREATE INDEX outbox_mails_waiting ON outbox_mails (sent_at, created_at);
