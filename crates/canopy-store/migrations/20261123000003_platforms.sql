-- Platforms and landing zones (TN1, TN2). Secrets are stored only as
-- XChaCha20-Poly1305 ciphertext (base64 of nonce || ciphertext), bound to the
-- platform's id as associated data; secret_names lists which are set.
CREATE TABLE platforms (
    id TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    platform_type TEXT NOT NULL,
    settings TEXT NOT NULL,
    secrets TEXT NOT NULL,
    secret_names TEXT NOT NULL,
    landing_zone_required BIGINT NOT NULL CHECK (landing_zone_required IN (0, 1)),
    deletion TEXT NOT NULL CHECK (deletion IN ('automatic', 'manual')),
    created_at BIGINT NOT NULL
);

-- Which platform role each project role maps to on a platform.
CREATE TABLE platform_role_mappings (
    platform_id TEXT NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES project_roles (id),
    platform_role TEXT NOT NULL,
    PRIMARY KEY (platform_id, role_id)
);

CREATE TABLE landing_zones (
    id TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    display_name TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (platform_id, identifier)
);
