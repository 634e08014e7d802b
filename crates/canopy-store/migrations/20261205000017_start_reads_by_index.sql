-- What a node reads at start and on its schedules costs what is due, not
-- the size of the installation (issue 13, B6).
--
-- The payment job reads the projects whose method expired and that name a
-- substitute, from the expired methods down; the forecast reads a
-- workspace's projects whose method runs out, from its methods down.
CREATE INDEX payment_methods_expiry ON payment_methods (expires_on);
CREATE INDEX projects_payment ON projects (payment_method_id, substitute_payment_method_id);

-- Start-up finds the chains whose creation the installation chain records
-- through these events alone, not through every installation event.
CREATE INDEX history_events_chain_created ON history_events (chain) WHERE kind = 'history_chain_created';

-- The periodic reconcile takes the tenants reconciled longest ago (never:
-- first) in this order and stops at its batch, instead of sorting every
-- tenant due.
CREATE INDEX tenants_reconcile_due ON tenants ((COALESCE(last_reconciled_at, 0)), id);
DROP INDEX tenants_reconciled;
