-- Payment methods of a workspace (PM1): a budget amount, the last day they
-- may be used (YYYY-MM-DD) and billing data (JSON). Projects name one and
-- a substitute (projects.payment_method_id, substitute_payment_method_id).
CREATE TABLE payment_methods (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    expires_on TEXT NOT NULL,
    billing_data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX payment_methods_workspace ON payment_methods (workspace_id);
