-- A provisioned account deactivated in Canopy by someone other than its
-- identity provider (an admin, an emergency revocation) is held: SCIM may
-- not reactivate it, only an admin of Canopy (1), so that the provider's
-- next synchronisation cannot undo an emergency revocation.
ALTER TABLE scim_users ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
