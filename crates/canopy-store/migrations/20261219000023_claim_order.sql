-- Replication claims take due tenants in (priority DESC, due_at, tenant_id)
-- order. With an index on (priority, due_at) alone, every claim read the
-- whole group of tenants marked at one instant (a full reconcile marks its
-- batch so) and sorted it by tenant_id to take 16 of them: a reconcile of
-- N tenants cost N²/16 rows read (issue 13: B3, and B6's reconcile, whose
-- CPU per tenant doubled from 10,000 to 50,000 tenants). The index now
-- gives the claim's whole order.
DROP INDEX tenant_work_due;
CREATE INDEX tenant_work_due ON tenant_work (priority DESC, due_at, tenant_id);
