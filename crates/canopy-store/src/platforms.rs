//! Platforms, their role mappings and landing zones.

use std::collections::BTreeMap;

use crate::db::Row;
use canopy_domain::platforms::{DeletionMode, PlatformType};
use canopy_domain::replication::DriftPolicy;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{PRIORITY_NORMAL, Reach, Result, RowExt, SecretKey, StoreError, Tx, new_id, to_us};

/// A platform as stored; its secrets stay sealed (see [`Tx::platform_secrets`]).
#[derive(Debug, Clone)]
pub struct PlatformRecord {
    pub id: Uuid,
    pub identifier: String,
    pub platform_type: PlatformType,
    pub settings: Map<String, Value>,
    /// The names of the secrets that are set, never their values.
    pub secret_names: Vec<String>,
    pub landing_zone_required: bool,
    pub deletion: DeletionMode,
    pub drift_policy: DriftPolicy,
    pub created_at: OffsetDateTime,
}

/// A new platform.
#[derive(Debug, Clone)]
pub struct NewPlatform<'a> {
    pub identifier: &'a str,
    pub platform_type: PlatformType,
    pub settings: &'a Map<String, Value>,
    pub secrets: &'a Map<String, Value>,
    pub landing_zone_required: bool,
    pub deletion: DeletionMode,
    pub drift_policy: DriftPolicy,
}

#[derive(Debug, Clone)]
pub struct LandingZoneRecord {
    pub id: Uuid,
    pub platform_id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub settings: Map<String, Value>,
    pub created_at: OffsetDateTime,
}

fn json_object(r: &Row, col: &str) -> Result<Map<String, Value>> {
    let text = r.text(col)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(format!("{col} is not a JSON object"))),
    }
}

const PLATFORM_COLS: &str =
    "id, identifier, platform_type, settings, secret_names, landing_zone_required, deletion, drift_policy, created_at";

fn platform_from_row(r: &Row) -> Result<PlatformRecord> {
    let names: Vec<String> = serde_json::from_str(r.str("secret_names")?)
        .map_err(|_| StoreError::Corrupt("secret_names is not a JSON list".into()))?;
    Ok(PlatformRecord {
        id: r.uuid("id")?,
        identifier: r.text("identifier")?,
        platform_type: r.parse("platform_type")?,
        settings: json_object(r, "settings")?,
        secret_names: names,
        landing_zone_required: r.flag("landing_zone_required")?,
        deletion: r.parse("deletion")?,
        drift_policy: r.parse("drift_policy")?,
        created_at: r.time("created_at")?,
    })
}

fn zone_from_row(r: &Row) -> Result<LandingZoneRecord> {
    Ok(LandingZoneRecord {
        id: r.uuid("id")?,
        platform_id: r.uuid("platform_id")?,
        identifier: r.text("identifier")?,
        display_name: r.text("display_name")?,
        settings: json_object(r, "settings")?,
        created_at: r.time("created_at")?,
    })
}

fn sealed_secrets(key: &SecretKey, platform_id: &str, secrets: &Map<String, Value>) -> Result<(String, String)> {
    let names: Vec<&String> = secrets.keys().collect();
    let plain = Value::Object(secrets.clone()).to_string();
    Ok((key.seal(platform_id, plain.as_bytes())?, serde_json::json!(names).to_string()))
}

impl Tx {
    pub async fn insert_platform(
        &mut self,
        p: NewPlatform<'_>,
        key: &SecretKey,
        now: OffsetDateTime,
    ) -> Result<PlatformRecord> {
        let id = new_id();
        let (sealed, names) = sealed_secrets(key, &id, p.secrets)?;
        let written = crate::db::query(format!(
            "INSERT INTO platforms ({PLATFORM_COLS}, secrets) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&id)
        .bind(p.identifier)
        .bind(p.platform_type.as_str())
        .bind(Value::Object(p.settings.clone()).to_string())
        .bind(names)
        .bind(i64::from(p.landing_zone_required))
        .bind(p.deletion.as_str())
        .bind(p.drift_policy.as_str())
        .bind(to_us(now))
        .bind(sealed)
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_platform");
        self.platform(p.identifier).await?.ok_or(StoreError::Conflict)
    }

    pub async fn platform(&mut self, identifier: &str) -> Result<Option<PlatformRecord>> {
        let row = crate::db::query(format!("SELECT {PLATFORM_COLS} FROM platforms WHERE identifier = $1"))
            .bind(identifier)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(platform_from_row).transpose()
    }

    pub async fn list_platforms(&mut self, cursor: Option<&str>, limit: u32) -> Result<Vec<PlatformRecord>> {
        let rows = crate::db::query(format!(
            "SELECT {PLATFORM_COLS} FROM platforms WHERE identifier > $1 ORDER BY identifier LIMIT CAST($2 AS BIGINT)"
        ))
        .bind(cursor.unwrap_or_default())
        .bind(crate::page_limit(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(platform_from_row).collect()
    }

    /// The decrypted secrets of a platform (for the adapters; never for clients).
    pub async fn platform_secrets(&mut self, id: Uuid, key: &SecretKey) -> Result<Map<String, Value>> {
        let row = crate::db::query("SELECT secrets FROM platforms WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(self.conn())
            .await?;
        let plain = key.open(&id.to_string(), row.str("secrets")?)?;
        match serde_json::from_slice(&plain) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(StoreError::Corrupt("decrypted secrets are not a JSON object".into())),
        }
    }

    /// Replace a platform's settings, secrets and flags. Its tenants are
    /// replicated again with the new connection.
    pub async fn update_platform(
        &mut self,
        p: &PlatformRecord,
        secrets: &Map<String, Value>,
        key: &SecretKey,
        now: OffsetDateTime,
    ) -> Result<()> {
        let id = p.id.to_string();
        let (sealed, names) = sealed_secrets(key, &id, secrets)?;
        let written = crate::db::query(
            "UPDATE platforms SET settings = $2, secrets = $3, secret_names = $4, landing_zone_required = $5, \
             deletion = $6, drift_policy = $7 WHERE id = $1",
        )
        .bind(&id)
        .bind(Value::Object(p.settings.clone()).to_string())
        .bind(sealed)
        .bind(names)
        .bind(i64::from(p.landing_zone_required))
        .bind(p.deletion.as_str())
        .bind(p.drift_policy.as_str())
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "update_platform");
        self.mark_dirty(Reach::Platform(p.id), PRIORITY_NORMAL, now).await?;
        Ok(())
    }

    pub async fn delete_platform(&mut self, id: Uuid) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM platforms WHERE id = $1").bind(id.to_string()).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_platform");
        Ok(())
    }

    /// Replace a platform's role mapping: (project role id, platform role).
    /// Its tenants converge on the new mapping.
    pub async fn set_role_mapping(
        &mut self,
        platform_id: Uuid,
        mapping: &[(Uuid, String)],
        now: OffsetDateTime,
    ) -> Result<()> {
        let written = crate::db::query("DELETE FROM platform_role_mappings WHERE platform_id = $1")
            .bind(platform_id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "set_role_mapping");
        for (role_id, platform_role) in mapping {
            let written = crate::db::query(
                "INSERT INTO platform_role_mappings (platform_id, role_id, platform_role) VALUES ($1, $2, $3)",
            )
            .bind(platform_id.to_string())
            .bind(role_id.to_string())
            .bind(platform_role)
            .execute(self.conn())
            .await?;
            self.changed(written.rows_affected(), "set_role_mapping");
        }
        self.mark_dirty(Reach::Platform(platform_id), PRIORITY_NORMAL, now).await?;
        Ok(())
    }

    /// A platform's role mapping: project role identifier → platform role.
    pub async fn role_mapping(&mut self, platform_id: Uuid) -> Result<BTreeMap<String, String>> {
        let rows = crate::db::query(
            "SELECT r.identifier, m.platform_role FROM platform_role_mappings m \
             JOIN project_roles r ON r.id = m.role_id WHERE m.platform_id = $1",
        )
        .bind(platform_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| Ok((r.text("identifier")?, r.text("platform_role")?))).collect()
    }

    /// How many platforms map a project role.
    pub async fn count_role_mappings_with_role(&mut self, role_id: Uuid) -> Result<i64> {
        let r = crate::db::query("SELECT COUNT(*) AS n FROM platform_role_mappings WHERE role_id = $1")
            .bind(role_id.to_string())
            .fetch_one(self.conn())
            .await?;
        r.int("n")
    }

    // ------------------------------------------------------------ landing zones

    pub async fn insert_landing_zone(
        &mut self,
        platform_id: Uuid,
        identifier: &str,
        display_name: &str,
        settings: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<LandingZoneRecord> {
        let written = crate::db::query(
            "INSERT INTO landing_zones (id, platform_id, identifier, display_name, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(platform_id.to_string())
        .bind(identifier)
        .bind(display_name)
        .bind(Value::Object(settings.clone()).to_string())
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_landing_zone");
        self.landing_zone(platform_id, identifier).await?.ok_or(StoreError::Conflict)
    }

    pub async fn landing_zone(&mut self, platform_id: Uuid, identifier: &str) -> Result<Option<LandingZoneRecord>> {
        let row = crate::db::query(
            "SELECT id, platform_id, identifier, display_name, settings, created_at FROM landing_zones \
             WHERE platform_id = $1 AND identifier = $2",
        )
        .bind(platform_id.to_string())
        .bind(identifier)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(zone_from_row).transpose()
    }

    pub async fn landing_zones(&mut self, platform_id: Uuid) -> Result<Vec<LandingZoneRecord>> {
        let rows = crate::db::query(
            "SELECT id, platform_id, identifier, display_name, settings, created_at FROM landing_zones \
             WHERE platform_id = $1 ORDER BY identifier",
        )
        .bind(platform_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(zone_from_row).collect()
    }

    pub async fn update_landing_zone(&mut self, z: &LandingZoneRecord) -> Result<()> {
        let written = crate::db::query("UPDATE landing_zones SET display_name = $2, settings = $3 WHERE id = $1")
            .bind(z.id.to_string())
            .bind(&z.display_name)
            .bind(Value::Object(z.settings.clone()).to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "update_landing_zone");
        Ok(())
    }

    pub async fn delete_landing_zone(&mut self, id: Uuid) -> Result<()> {
        let written = crate::db::query("DELETE FROM landing_zones WHERE id = $1")
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_landing_zone");
        Ok(())
    }
}
