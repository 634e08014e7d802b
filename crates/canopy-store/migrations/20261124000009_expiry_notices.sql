-- When the soon-expiring notice of a binding was queued (AC8, AC12): one per
-- binding and expiration; a changed expiration clears it.
ALTER TABLE bindings ADD COLUMN expiry_notice_at BIGINT;
