//! Tenants of a project (TN3, TN5): added on a platform (and landing zone),
//! replicated again on demand. Their deletion is in [`crate::deletion`].

use canopy_domain::authz::Action;
use canopy_domain::events::{TenantCreated, TenantReplicationRequested};
use canopy_domain::replication::tenant_name;
use canopy_store::{PRIORITY_NORMAL, ProjectRecord, Reach, Store, TenantRecord, Tx, WorkspaceRecord};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::load;
use crate::platforms::{PlatformCallError, Platforms, Preview};
use crate::principal::Principal;

/// A tenant to add: the platform's identifier and, where it asks for one, a landing zone.
#[derive(Debug, Clone, Default)]
pub struct NewTenantInput {
    pub platform: String,
    pub landing_zone: Option<String>,
}

pub async fn load_tenant(tx: &mut Tx, p: &ProjectRecord, platform: &str) -> Result<TenantRecord> {
    tx.tenant(p.id, platform)
        .await?
        .ok_or_else(|| Error::not_found(format!("project {:?} has no tenant on platform {platform:?}", p.identifier)))
}

/// Load the workspace and project of a path and authorise the by.
pub async fn scope(
    tx: &mut Tx,
    by: &Principal,
    (ws, project): (&str, &str),
    action: Action,
) -> Result<(WorkspaceRecord, ProjectRecord)> {
    load::project_in(tx, by, (ws, project), action).await
}

/// A project's tenants with their replication status (TN5).
pub async fn list(
    store: &Store,
    by: &Principal,
    path: (&str, &str),
) -> Result<(WorkspaceRecord, ProjectRecord, Vec<TenantRecord>)> {
    let mut tx = store.read().await?;
    let (ws, p) = scope(&mut tx, by, path, Action::ViewWorkspace).await?;
    let tenants = tx.project_tenants(p.id).await?;
    Ok((ws, p, tenants))
}

/// One tenant: its replication status and the platform's last error (TN5).
pub async fn show(
    store: &Store,
    by: &Principal,
    (ws, project, platform): (&str, &str, &str),
) -> Result<(WorkspaceRecord, ProjectRecord, TenantRecord)> {
    let mut tx = store.read().await?;
    let (ws, p) = scope(&mut tx, by, (ws, project), Action::ViewWorkspace).await?;
    let t = load_tenant(&mut tx, &p, platform).await?;
    Ok((ws, p, t))
}

/// What replication would change in a tenant now, without changing it
/// (managers): asked of the platform outside any transaction.
pub async fn plan(
    store: &Store,
    platforms: &dyn Platforms,
    by: &Principal,
    (ws, project, platform): (&str, &str, &str),
) -> Result<(TenantRecord, Preview)> {
    let mut tx = store.read().await?;
    let (_, p) = scope(&mut tx, by, (ws, project), Action::ManageWorkspace).await?;
    let t = load_tenant(&mut tx, &p, platform).await?;
    drop(tx);
    let preview = platforms.preview(t.id).await.map_err(|e| match e {
        PlatformCallError::Internal(cause) => Error::Internal(cause),
        PlatformCallError::NoTenant => Error::not_found(format!("the tenant on {platform} is gone")),
        PlatformCallError::Busy => Error::conflict(PlatformCallError::Busy.to_string()),
        PlatformCallError::Platform(e) => Error::Upstream(format!("platform {platform}: {e}")),
    })?;
    Ok((t, preview))
}

/// Add a tenant on a platform to a project (managers). Replication creates
/// it on the platform and gives every bound person the mapped role.
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project): (&str, &str),
    input: NewTenantInput,
) -> Result<(WorkspaceRecord, ProjectRecord, TenantRecord)> {
    let mut tx = store.write().await?;
    let (ws, p) = scope(&mut tx, by, (ws, project), Action::ManageWorkspace).await?;
    let platform = tx
        .platform(&input.platform)
        .await?
        .ok_or_else(|| Error::invalid("platform", format!("platform {:?} does not exist", input.platform)))?;
    let zone = match input.landing_zone.as_deref() {
        Some(z) => Some(tx.landing_zone(platform.id, z).await?.ok_or_else(|| {
            Error::invalid("landing_zone", format!("platform {} has no landing zone {z:?}", platform.identifier))
        })?),
        None if platform.landing_zone_required => {
            return Err(Error::invalid(
                "landing_zone",
                format!("platform {} requires a landing zone", platform.identifier),
            ));
        }
        None => None,
    };
    if p.deletion_requested_at.is_some() {
        return Err(Error::conflict(format!("project {} is being deleted", p.identifier)));
    }
    if tx.tenant(p.id, &platform.identifier).await?.is_some() {
        return Err(Error::conflict_on(
            "platform",
            format!("project {} already has a tenant on platform {}", p.identifier, platform.identifier),
        ));
    }
    let name = |id| tenant_name(&ws.identifier, &p.identifier, id);
    let t = tx.insert_tenant(p.id, platform.id, zone.as_ref().map(|z| z.id), name, now).await?;
    let created = TenantCreated {
        project: p.identifier.clone(),
        platform: platform.identifier,
        landing_zone: t.landing_zone.clone(),
        name: t.name.clone(),
    };
    tx.record(Some(ws.id), now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok((ws, p, t))
}

/// Replicate a tenant again now (managers, TN5): it converges on the current
/// bindings and repairs drift. Answers 202; the status follows.
pub async fn replicate(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project, platform): (&str, &str, &str),
) -> Result<(WorkspaceRecord, ProjectRecord, TenantRecord)> {
    let mut tx = store.write().await?;
    let (ws, p) = scope(&mut tx, by, (ws, project), Action::ManageWorkspace).await?;
    let t = load_tenant(&mut tx, &p, platform).await?;
    tx.mark_dirty(Reach::Tenant(t.id), PRIORITY_NORMAL, now).await?;
    let requested = TenantReplicationRequested { project: p.identifier.clone(), platform: t.platform };
    tx.record(Some(ws.id), now, &by.initiator(), requested.into())?;
    let t = load_tenant(&mut tx, &p, platform).await?;
    tx.commit().await?;
    Ok((ws, p, t))
}
