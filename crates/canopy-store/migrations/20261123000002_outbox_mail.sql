-- Outgoing e-mail, written in the same transaction as the change that
-- causes it and delivered by the engine's mail sender. A row is claimed by
-- moving next_attempt_at past now (a lease), so two senders never send it
-- at once; a crash before sent_at is set means it is sent again later
-- (at-least-once delivery).
CREATE TABLE outbox_mails (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_mails_due ON outbox_mails (sent_at, next_attempt_at);
