//! Emergency revocations (AD4): the record of one, and the assignments the
//! person held in each tenant when it was made.

use crate::db::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, Tx, to_us};

/// An assignment held in a tenant, with the names that locate the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAssignment {
    pub tenant_id: Uuid,
    pub workspace: String,
    pub project: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub platform_role: String,
}

/// A recorded emergency revocation. `removed` is what the request ended
/// (memberships, groups, bindings) as the API reports it.
#[derive(Debug, Clone)]
pub struct RevocationRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub justification: Option<String>,
    pub initiator: String,
    pub requested_at: OffsetDateTime,
    pub removed: serde_json::Value,
    pub held: Vec<HeldAssignment>,
}

fn held_from_row(r: &Row) -> Result<HeldAssignment> {
    Ok(HeldAssignment {
        tenant_id: r.uuid("tenant_id")?,
        workspace: r.text("workspace")?,
        project: r.text("project")?,
        platform: r.text("platform")?,
        external_id: r.text_opt("external_id")?,
        platform_role: r.text("platform_role")?,
    })
}

impl Tx {
    /// What the platform account `account` holds (or Canopy is granting it)
    /// in every tenant, as Canopy applied it.
    pub async fn assignments_held_by(&mut self, account: &str) -> Result<Vec<HeldAssignment>> {
        let rows = crate::db::query(
            "SELECT a.tenant_id, w.identifier AS workspace, p.identifier AS project, pl.identifier AS platform, \
                    t.external_id, a.platform_role \
             FROM tenant_assignments a JOIN tenants t ON t.id = a.tenant_id \
             JOIN projects p ON p.id = t.project_id JOIN workspaces w ON w.id = p.workspace_id \
             JOIN platforms pl ON pl.id = t.platform_id \
             WHERE a.account = $1 ORDER BY w.identifier, p.identifier, pl.identifier, a.platform_role",
        )
        .bind(account)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(held_from_row).collect()
    }

    pub async fn insert_emergency_revocation(&mut self, r: &RevocationRecord) -> Result<()> {
        let written = crate::db::query(
            "INSERT INTO emergency_revocations (id, user_id, username, justification, initiator, requested_at, removed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.to_string())
        .bind(r.user_id.to_string())
        .bind(&r.username)
        .bind(r.justification.as_deref())
        .bind(&r.initiator)
        .bind(to_us(r.requested_at))
        .bind(r.removed.to_string())
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_emergency_revocation");
        for h in &r.held {
            let written = crate::db::query(
                "INSERT INTO emergency_revocation_assignments \
                 (revocation_id, tenant_id, workspace, project, platform, external_id, platform_role) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(r.id.to_string())
            .bind(h.tenant_id.to_string())
            .bind(&h.workspace)
            .bind(&h.project)
            .bind(&h.platform)
            .bind(h.external_id.as_deref())
            .bind(&h.platform_role)
            .execute(self.conn())
            .await?;
            self.changed(written.rows_affected(), "insert_emergency_revocation");
        }
        Ok(())
    }

    pub async fn emergency_revocation(&mut self, id: Uuid) -> Result<Option<RevocationRecord>> {
        let Some(r) = crate::db::query(
            "SELECT id, user_id, username, justification, initiator, requested_at, removed \
             FROM emergency_revocations WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        else {
            return Ok(None);
        };
        let held = crate::db::query(
            "SELECT tenant_id, workspace, project, platform, external_id, platform_role \
             FROM emergency_revocation_assignments WHERE revocation_id = $1 \
             ORDER BY workspace, project, platform, platform_role",
        )
        .bind(id.to_string())
        .fetch_all(self.conn())
        .await?;
        let removed = serde_json::from_str(r.str("removed")?).unwrap_or(serde_json::Value::Null);
        Ok(Some(RevocationRecord {
            id: r.uuid("id")?,
            user_id: r.uuid("user_id")?,
            username: r.text("username")?,
            justification: r.text_opt("justification")?,
            initiator: r.text("initiator")?,
            requested_at: r.time("requested_at")?,
            removed,
            held: held.iter().map(held_from_row).collect::<Result<_>>()?,
        }))
    }
}
