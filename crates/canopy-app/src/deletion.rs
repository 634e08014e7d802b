//! Deleting projects and tenants (DL1-DL5, AD5). A deletion is requested
//! (of the project or one tenant), confirmed by typing the project
//! identifier, then carried out: by the engine on automatic platforms, by a
//! platform engineer on manual ones, who may also decline. What follows a
//! tenant's end ([`settle_project`]) is shared with the engine.

use canopy_domain::authz::Action;
use canopy_domain::deletion::{
    ConfirmError, ProjectOutcome, TenantDeletion, TenantInDeletion, confirm as confirm_rule, project_outcome,
};
use canopy_domain::events::{
    BindingRemoved, ConfirmedRevocation, ProjectDeleted, ProjectDeletionDeclined, ProjectDeletionRequested,
    TenantDeleted, TenantDeletionConfirmed, TenantDeletionDeclined, TenantDeletionRequested,
};
use canopy_domain::history::Initiator;
use canopy_domain::platforms::DeletionMode;
use canopy_store::{PRIORITY_URGENT, ProjectRecord, Reach, Store, StoreError, TenantRecord, Tx, WorkspaceRecord};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::load;
use crate::platforms::{PlatformCallError, Platforms};
use crate::principal::Principal;

/// A project's deletion as it stands: the project and its tenants.
#[derive(Debug, Clone)]
pub struct DeletionView {
    pub workspace: WorkspaceRecord,
    pub project: ProjectRecord,
    pub tenants: Vec<TenantRecord>,
}

/// An assignment the platform confirmed revoked, and when.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub account: String,
    pub platform_role: String,
    pub confirmed_at: OffsetDateTime,
}

/// What a platform engineer's confirmation of a deletion by hand did.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub workspace: String,
    pub project: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub revoked: Vec<Revoked>,
    /// Why the platform could not be asked, or a revocation failed.
    pub platform_error: Option<String>,
}

fn platform_failed(platform: &str, e: PlatformCallError) -> Error {
    match e {
        PlatformCallError::Internal(cause) => Error::Internal(cause),
        PlatformCallError::NoTenant => {
            Error::conflict(format!("the tenant on {platform} changed meanwhile; try again"))
        }
        PlatformCallError::Busy => Error::conflict(PlatformCallError::Busy.to_string()),
        PlatformCallError::Platform(e) => Error::Upstream(format!("platform {platform}: {e}")),
    }
}

/// The resources of each tenant on an automatic platform (asked before any
/// transaction opens: a platform may be slow).
async fn check_resources(platforms: &dyn Platforms, tenants: &[TenantRecord]) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        if t.deletion_mode == DeletionMode::Automatic {
            out.push(platforms.find_resources(t.id).await.map_err(|e| platform_failed(&t.platform, e))?);
        } else {
            out.push(Vec::new());
        }
    }
    Ok(out)
}

/// The same tenants in the same deletion states.
fn same_tenants(a: &[TenantRecord], b: &[TenantRecord]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.id == y.id && x.deletion == y.deletion)
}

async fn scope(tx: &mut Tx, by: &Principal, ws: &str, project: &str) -> Result<(WorkspaceRecord, ProjectRecord)> {
    load::project_in(tx, by, (ws, project), Action::ManageWorkspace).await
}

/// Where a project's deletion stands, per tenant (members of the workspace).
pub async fn show(store: &Store, by: &Principal, path: (&str, &str)) -> Result<DeletionView> {
    let mut tx = store.read().await?;
    let (workspace, project) = load::project_in(&mut tx, by, path, Action::ViewWorkspace).await?;
    let tenants = tx.project_tenants(project.id).await?;
    Ok(DeletionView { workspace, project, tenants })
}

/// Tenant deletions on a platform waiting for a platform engineer (DL3,
/// AD5), each with its workspace and project identifiers.
pub async fn awaiting_engineer(
    store: &Store,
    by: &Principal,
    platform: &str,
) -> Result<Vec<(TenantRecord, String, String)>> {
    by.require(Action::AdministerPlatforms)?;
    let mut tx = store.read().await?;
    let pf = tx
        .platform(platform)
        .await?
        .ok_or_else(|| Error::not_found(format!("platform {platform:?} does not exist")))?;
    Ok(tx.deletions_awaiting_engineer(pf.id).await?)
}

/// Request the deletion of a project (`platform` none) or of one of its
/// tenants: tenants on automatic platforms are checked for resources. A
/// project without tenants is deleted at once (204).
pub async fn request(
    store: &Store,
    platforms: &dyn Platforms,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project, platform): (&str, &str, Option<&str>),
) -> Result<Option<DeletionView>> {
    let mut tx = store.read().await?;
    let (_, p) = scope(&mut tx, by, ws, project).await?;
    let all = tx.project_tenants(p.id).await?;
    drop(tx);
    let targets: Vec<TenantRecord> = match platform {
        Some(pf) => {
            let t = all.iter().find(|t| t.platform == pf).ok_or_else(|| {
                Error::not_found(format!("project {:?} has no tenant on platform {pf:?}", p.identifier))
            })?;
            vec![t.clone()]
        }
        None => all.clone(),
    };
    if let Some(busy) = targets.iter().find(|t| matches!(t.deletion, Some(s) if s != TenantDeletion::Declined)) {
        return Err(Error::conflict(format!("the tenant on {} is already being deleted", busy.platform)));
    }
    let resources = check_resources(platforms, &targets).await?;

    let mut tx = store.write().await?;
    let (ws, p) = scope(&mut tx, by, ws, project).await?;
    tx.lock_project_tenants(p.id).await?;
    // the tenants must be those checked: one added or changed meanwhile was not
    if !same_tenants(&all, &tx.project_tenants(p.id).await?) {
        return Err(Error::conflict("the project's tenants changed meanwhile; try again"));
    }
    if p.deletion_requested_at.is_some() {
        return Err(Error::conflict(format!("project {} is already being deleted", p.identifier)));
    }
    let initiator = by.initiator();
    if platform.is_none() && tx.project_tenants(p.id).await?.is_empty() {
        delete_project(&mut tx, &p, &initiator, now).await?;
        tx.commit().await?;
        return Ok(None);
    }
    for (t, found) in targets.iter().zip(&resources) {
        tx.set_tenant_deletion(t.id, Some(TenantDeletion::Requested), found, now).await?;
        let requested = TenantDeletionRequested {
            project: p.identifier.clone(),
            platform: t.platform.clone(),
            mode: t.deletion_mode.as_str().to_owned(),
            resources: found.clone(),
        };
        tx.record(Some(ws.id), now, &initiator, requested.into())?;
    }
    if platform.is_none() {
        tx.set_project_deletion(p.id, Some(now)).await?;
        let tenants = targets.iter().map(|t| t.platform.clone()).collect();
        let requested = ProjectDeletionRequested { project: p.identifier.clone(), tenants };
        tx.record(Some(ws.id), now, &initiator, requested.into())?;
    }
    let p = load::project(&mut tx, &ws, project).await?;
    let tenants = tx.project_tenants(p.id).await?;
    tx.commit().await?;
    Ok(Some(DeletionView { workspace: ws, project: p, tenants }))
}

/// Confirm the requested deletion by typing the project identifier
/// (managers, DL2). Automatic platforms are checked again: a tenant with
/// resources left refuses the confirmation (409, listing them). Confirmed
/// automatic tenants are deleted by Canopy; manual ones wait for a platform
/// engineer (DL3, DL4).
pub async fn confirm(
    store: &Store,
    platforms: &dyn Platforms,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project): (&str, &str),
    identifier: &str,
) -> Result<DeletionView> {
    let mut tx = store.read().await?;
    let (_, p) = scope(&mut tx, by, ws, project).await?;
    if identifier != p.identifier {
        return Err(Error::invalid(
            "identifier",
            ConfirmError::WrongIdentifier { expected: p.identifier.clone() }.to_string(),
        ));
    }
    let requested: Vec<TenantRecord> =
        tx.project_tenants(p.id).await?.into_iter().filter(|t| t.deletion == Some(TenantDeletion::Requested)).collect();
    drop(tx);
    let found = check_resources(platforms, &requested).await?;

    let mut tx = store.write().await?;
    let (ws, p) = scope(&mut tx, by, ws, project).await?;
    tx.lock_project_tenants(p.id).await?;
    let tenants = tx.project_tenants(p.id).await?;
    let requested_now: Vec<Uuid> =
        tenants.iter().filter(|t| t.deletion == Some(TenantDeletion::Requested)).map(|t| t.id).collect();
    if requested_now != requested.iter().map(|t| t.id).collect::<Vec<_>>() {
        return Err(Error::conflict("the project's tenant deletions changed meanwhile; try again"));
    }
    let inputs: Vec<TenantInDeletion> = tenants
        .iter()
        .map(|t| TenantInDeletion {
            mode: t.deletion_mode,
            state: t.deletion,
            // fresh from the platform where just checked, else as recorded
            resources: requested
                .iter()
                .zip(&found)
                .find(|(r, _)| r.id == t.id)
                .map_or_else(|| t.deletion_resources.clone(), |(_, f)| f.clone()),
        })
        .collect();
    let next = match confirm_rule(identifier, &p.identifier, &inputs) {
        Ok(next) => next,
        Err(ConfirmError::WrongIdentifier { .. }) => {
            return Err(Error::invalid("identifier", "does not match the project's identifier"));
        }
        Err(ConfirmError::NothingRequested) => {
            return Err(Error::conflict(format!("no deletion of {} waits for confirmation", p.identifier)));
        }
        Err(ConfirmError::ResourcesRemain) => {
            let left: Vec<String> = tenants
                .iter()
                .zip(&inputs)
                .filter(|(_, i)| !i.resources.is_empty() && i.mode == DeletionMode::Automatic)
                .map(|(t, i)| format!("{}: {}", t.platform, i.resources.join(", ")))
                .collect();
            return Err(Error::conflict(format!("remove these resources first: {}", left.join("; "))));
        }
    };
    let initiator = by.initiator();
    for ((t, input), state) in tenants.iter().zip(&inputs).zip(next) {
        if state == t.deletion {
            continue;
        }
        tx.set_tenant_deletion(t.id, state, &input.resources, now).await?;
        if state == Some(TenantDeletion::Deleting) {
            tx.mark_dirty(Reach::Tenant(t.id), PRIORITY_URGENT, now).await?;
        }
        let confirmed = TenantDeletionConfirmed {
            project: p.identifier.clone(),
            platform: t.platform.clone(),
            next: state.map(|s| s.as_str().to_owned()),
        };
        tx.record(Some(ws.id), now, &initiator, confirmed.into())?;
    }
    let tenants = tx.project_tenants(p.id).await?;
    tx.commit().await?;
    Ok(DeletionView { workspace: ws, project: p, tenants })
}

/// A pending tenant deletion of a platform, with its project, for a
/// platform engineer's decision: the project's tenants locked, and the state
/// checked under the lock, so two engineers deciding at once decide once.
async fn load_pending(tx: &mut Tx, platform: &str, id: Uuid) -> Result<(TenantRecord, ProjectRecord)> {
    find_pending(tx, platform, id, true).await
}

/// A tenant deletion waiting for a platform engineer; `lock` takes the
/// project's tenants first (in a write transaction).
async fn find_pending(tx: &mut Tx, platform: &str, id: Uuid, lock: bool) -> Result<(TenantRecord, ProjectRecord)> {
    let pf = tx
        .platform(platform)
        .await?
        .ok_or_else(|| Error::not_found(format!("platform {platform:?} does not exist")))?;
    let missing = || Error::not_found(format!("platform {platform} has no tenant deletion {id}"));
    let t = tx.tenant_by_id(id).await?.filter(|t| t.platform_id == pf.id).ok_or_else(missing)?;
    if lock {
        tx.lock_project_tenants(t.project_id).await?;
    }
    let t = tx.tenant_by_id(id).await?.ok_or_else(missing)?;
    if t.deletion != Some(TenantDeletion::AwaitingEngineer) {
        return Err(Error::conflict("this tenant deletion does not wait for a platform engineer"));
    }
    let p = tx.project_by_id(t.project_id).await?.ok_or_else(|| Error::not_found("the tenant's project is gone"))?;
    Ok((t, p))
}

/// A platform engineer deleted the tenant by hand: Canopy first revokes
/// every assignment it manages there (an account said to be deleted may be
/// alive), then forgets the tenant, and the project goes when it was its
/// last tenant (DL1, DL3). The receipt lists what the platform confirmed
/// revoked, and says so when it could not be reached.
pub async fn engineer_confirm(
    store: &Store,
    platforms: &dyn Platforms,
    by: &Principal,
    now: OffsetDateTime,
    (platform, id): (&str, Uuid),
) -> Result<Receipt> {
    by.require(Action::AdministerPlatforms)?;
    // refuse what does not wait for an engineer before asking the platform
    find_pending(&mut store.read().await?, platform, id, false).await?;
    let (withdrawal, lease) = match platforms.withdraw_everything(id).await {
        Ok(w) => w,
        Err(PlatformCallError::NoTenant) => {
            return Err(Error::not_found(format!("platform {platform} has no tenant deletion {id}")));
        }
        Err(PlatformCallError::Busy) => return Err(Error::conflict(PlatformCallError::Busy.to_string())),
        Err(e) => return Err(Error::Internal(e.to_string())),
    };
    let mut tx = store.write().await?;
    let (t, p) = match load_pending(&mut tx, platform, id).await {
        Ok(found) => found,
        Err(e) => {
            // decided meanwhile (declined): the tenant stays, and replication resumes
            drop(tx);
            platforms.release(&lease).await.map_err(|e| Error::Internal(e.to_string()))?;
            return Err(e);
        }
    };
    let ws = tx.workspace_by_id(p.workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
    let initiator = by.initiator();
    let revoked: Vec<Revoked> = withdrawal
        .revoked
        .into_iter()
        .map(|(a, at)| Revoked { account: a.user, platform_role: a.platform_role, confirmed_at: at })
        .collect();
    tx.delete_tenant(t.id).await?;
    let deleted = TenantDeleted {
        project: p.identifier.clone(),
        platform: t.platform.clone(),
        external_id: t.external_id.clone(),
        node: None,
        by_hand: true,
        revoked: Some(
            revoked
                .iter()
                .map(|r| ConfirmedRevocation {
                    account: r.account.clone(),
                    platform_role: r.platform_role.clone(),
                    confirmed_at: r.confirmed_at,
                })
                .collect(),
        ),
        platform_error: withdrawal.failed.clone(),
    };
    tx.record(Some(p.workspace_id), now, &initiator, deleted.into())?;
    settle_project(&mut tx, p.id, &initiator, now).await?;
    tx.commit().await?;
    Ok(Receipt {
        workspace: ws,
        project: p.identifier,
        platform: t.platform,
        external_id: t.external_id,
        revoked,
        platform_error: withdrawal.failed,
    })
}

/// A platform engineer declines the tenant's deletion: the tenant stays, and
/// a project being deleted stays with only its declined tenants (DL5).
pub async fn engineer_decline(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (platform, id): (&str, Uuid),
) -> Result<()> {
    by.require(Action::AdministerPlatforms)?;
    let mut tx = store.write().await?;
    let (t, p) = load_pending(&mut tx, platform, id).await?;
    let initiator = by.initiator();
    // a tenant deleted on its own simply stays; in a project deletion it is
    // kept declined until the other tenants are settled
    let state = p.deletion_requested_at.map(|_| TenantDeletion::Declined);
    tx.set_tenant_deletion(t.id, state, &[], now).await?;
    let declined = TenantDeletionDeclined { project: p.identifier.clone(), platform: t.platform.clone() };
    tx.record(Some(p.workspace_id), now, &initiator, declined.into())?;
    settle_project(&mut tx, p.id, &initiator, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Delete a project with its bindings, recording each binding's end and the
/// project's deletion in the workspace's history.
pub async fn delete_project(
    tx: &mut Tx,
    p: &ProjectRecord,
    initiator: &Initiator,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for b in tx.project_bindings(p.id).await? {
        let removed = BindingRemoved {
            binding: b.binding.id,
            project: p.identifier.clone(),
            subject: format!("{}:{}", b.binding.subject.kind, b.subject_name),
            role: b.role_identifier,
            expires_at: b.binding.expires_at,
            reason: Some("project deleted".to_owned()),
            request: None,
        };
        tx.record(Some(p.workspace_id), now, initiator, removed.into())?;
    }
    tx.delete_project(p.id).await?;
    tx.record(Some(p.workspace_id), now, initiator, ProjectDeleted { project: p.identifier.clone() }.into())?;
    Ok(())
}

/// After a tenant of a project being deleted went or was declined: delete
/// the project when no tenant is left, or end its deletion when only
/// declined tenants are left (they become ordinary tenants again).
pub async fn settle_project(
    tx: &mut Tx,
    project_id: Uuid,
    initiator: &Initiator,
    now: OffsetDateTime,
) -> Result<ProjectOutcome, StoreError> {
    let Some(p) = tx.project_by_id(project_id).await? else { return Ok(ProjectOutcome::Delete) };
    if p.deletion_requested_at.is_none() {
        return Ok(ProjectOutcome::Wait);
    }
    let tenants = tx.project_tenants(p.id).await?;
    let states: Vec<Option<TenantDeletion>> = tenants.iter().map(|t| t.deletion).collect();
    let outcome = project_outcome(&states);
    match outcome {
        ProjectOutcome::Wait => {}
        ProjectOutcome::Delete => delete_project(tx, &p, initiator, now).await?,
        ProjectOutcome::KeepDeclined => {
            for t in &tenants {
                tx.set_tenant_deletion(t.id, None, &[], now).await?;
            }
            tx.set_project_deletion(p.id, None).await?;
            let kept = tenants.iter().map(|t| t.platform.clone()).collect();
            let declined = ProjectDeletionDeclined { project: p.identifier, kept_tenants: kept };
            tx.record(Some(p.workspace_id), now, initiator, declined.into())?;
        }
    }
    Ok(outcome)
}
