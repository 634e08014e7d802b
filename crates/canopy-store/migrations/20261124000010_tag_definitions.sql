-- Tag definitions (PR3): the tags projects may carry. `options` and
-- `default_value` are JSON.
CREATE TABLE tag_definitions (
    tag_key TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    options TEXT NOT NULL,
    required BIGINT NOT NULL,
    default_value TEXT,
    admin_only BIGINT NOT NULL,
    pattern TEXT,
    created_at BIGINT NOT NULL
);
