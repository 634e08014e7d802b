//! Deleting projects and tenants (DL1-DL5, AD5). A deletion is requested
//! (`DELETE` on the project or one tenant), confirmed by typing the project
//! identifier, then carried out: by the engine on automatic platforms, by a
//! platform engineer on manual ones, who may also decline.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canopy_api_types::{
    ConfirmDeletion, ConfirmedRevocation, ManualDeletionReceipt, Page, PendingDeletion, Problem, ProjectDeletion,
    TenantDeletionState,
};
use canopy_domain::authz::Action;
use canopy_domain::deletion::{ConfirmError, TenantDeletion, TenantInDeletion, confirm as confirm_rule};
use canopy_domain::history::EventKind;
use canopy_domain::platforms::DeletionMode;
use canopy_engine::replication::ReplicationError;
use canopy_store::{PRIORITY_URGENT, ProjectRecord, Reach, TenantRecord, Tx, WorkspaceRecord};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path};
use crate::routes::{load_project, load_workspace, rfc3339};

fn view(ws: &WorkspaceRecord, p: &ProjectRecord, tenants: &[TenantRecord]) -> ProjectDeletion {
    let states: Vec<Option<TenantDeletion>> = tenants.iter().map(|t| t.deletion).collect();
    let state = if states.contains(&Some(TenantDeletion::Requested)) {
        "awaiting_confirmation"
    } else if states.iter().any(|s| matches!(s, Some(TenantDeletion::Deleting | TenantDeletion::AwaitingEngineer))) {
        "in_progress"
    } else {
        "none"
    };
    ProjectDeletion {
        workspace: ws.identifier.clone(),
        project: p.identifier.clone(),
        project_deletion: p.deletion_requested_at.is_some(),
        state: state.to_owned(),
        tenants: tenants
            .iter()
            .map(|t| TenantDeletionState {
                id: t.id,
                platform: t.platform.clone(),
                mode: t.deletion_mode.as_str().to_owned(),
                state: t.deletion.map(|d| d.as_str().to_owned()),
                resources: t.deletion_resources.clone(),
            })
            .collect(),
    }
}

fn platform_failed(platform: &str, e: ReplicationError) -> ApiError {
    match e {
        ReplicationError::Store(e) => e.into(),
        ReplicationError::NoTenant => {
            ApiError::conflict(format!("the tenant on {platform} changed meanwhile; try again"))
        }
        ReplicationError::Busy => ApiError::conflict(ReplicationError::Busy.to_string()),
        ReplicationError::Platform(e) => ApiError::Upstream(format!("platform {platform}: {e}")),
    }
}

/// The resources of each tenant on an automatic platform (asked before any
/// transaction opens: a platform may be slow).
async fn check_resources(app: &AppState, tenants: &[TenantRecord]) -> ApiResult<Vec<Vec<String>>> {
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        if t.deletion_mode == DeletionMode::Automatic {
            out.push(app.replicator.find_resources(t.id).await.map_err(|e| platform_failed(&t.platform, e))?);
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

async fn scope(tx: &mut Tx, caller: &Caller, ws: &str, project: &str) -> ApiResult<(WorkspaceRecord, ProjectRecord)> {
    let ws = load_workspace(tx, ws).await?;
    caller.require_in(tx, &ws, Action::ManageWorkspace).await?;
    let p = load_project(tx, &ws, project).await?;
    Ok((ws, p))
}

/// Request the deletion of a project (`platform` none) or of one of its
/// tenants: tenants on automatic platforms are checked for resources. A
/// project without tenants is deleted at once (204).
pub async fn request(
    app: &AppState,
    caller: &Caller,
    ws: &str,
    project: &str,
    platform: Option<&str>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    let (_, p) = scope(&mut tx, caller, ws, project).await?;
    let all = tx.project_tenants(p.id).await?;
    drop(tx);
    let targets: Vec<TenantRecord> = match platform {
        Some(pf) => {
            let t = all.iter().find(|t| t.platform == pf).ok_or_else(|| {
                ApiError::not_found(format!("project {:?} has no tenant on platform {pf:?}", p.identifier))
            })?;
            vec![t.clone()]
        }
        None => all.clone(),
    };
    if let Some(busy) = targets.iter().find(|t| matches!(t.deletion, Some(s) if s != TenantDeletion::Declined)) {
        return Err(ApiError::conflict(format!("the tenant on {} is already being deleted", busy.platform)));
    }
    let resources = check_resources(app, &targets).await?;

    let mut tx = app.store.write().await?;
    let (ws, p) = scope(&mut tx, caller, ws, project).await?;
    tx.lock_project_tenants(p.id).await?;
    // the tenants must be those checked: one added or changed meanwhile was not
    if !same_tenants(&all, &tx.project_tenants(p.id).await?) {
        return Err(ApiError::conflict("the project's tenants changed meanwhile; try again"));
    }
    if p.deletion_requested_at.is_some() {
        return Err(ApiError::conflict(format!("project {} is already being deleted", p.identifier)));
    }
    let initiator = caller.initiator();
    if platform.is_none() && tx.project_tenants(p.id).await?.is_empty() {
        canopy_engine::deletion::delete_project(&mut tx, &p, &initiator, now).await?;
        tx.commit().await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    for (t, found) in targets.iter().zip(&resources) {
        tx.set_tenant_deletion(t.id, Some(TenantDeletion::Requested), found, now).await?;
        tx.append_event(
            Some(ws.id),
            EventKind::TenantDeletionRequested,
            now,
            &initiator,
            json!({"project": p.identifier, "platform": t.platform, "mode": t.deletion_mode.as_str(), "resources": found}),
        )
        .await?;
    }
    if platform.is_none() {
        tx.set_project_deletion(p.id, Some(now)).await?;
        let platforms: Vec<&str> = targets.iter().map(|t| t.platform.as_str()).collect();
        tx.append_event(
            Some(ws.id),
            EventKind::ProjectDeletionRequested,
            now,
            &initiator,
            json!({"project": p.identifier, "tenants": platforms}),
        )
        .await?;
    }
    let p = load_project(&mut tx, &ws, project).await?;
    let tenants = tx.project_tenants(p.id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(view(&ws, &p, &tenants))).into_response())
}

/// Where a project's deletion stands: per tenant its mode, state and the
/// resources the platform reported.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/deletion", tag = "deletion",
    params(("ws" = String, Path), ("project" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ProjectDeletion), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
) -> ApiResult<Json<ProjectDeletion>> {
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let p = load_project(&mut tx, &ws, &project).await?;
    let tenants = tx.project_tenants(p.id).await?;
    Ok(Json(view(&ws, &p, &tenants)))
}

/// Confirm the requested deletion by typing the project identifier
/// (managers, DL2). Automatic platforms are checked again: a tenant with
/// resources left refuses the confirmation (409, listing them). Confirmed
/// automatic tenants are deleted by Canopy; manual ones wait for a platform
/// engineer (DL3, DL4).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/deletion/confirm", tag = "deletion",
    params(("ws" = String, Path), ("project" = String, Path)), request_body = ConfirmDeletion, security(("bearer" = [])),
    responses((status = 200, body = ProjectDeletion), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 502, body = Problem)))]
pub async fn confirm(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConfirmDeletion>,
) -> ApiResult<Json<ProjectDeletion>> {
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    let (_, p) = scope(&mut tx, &caller, &ws, &project).await?;
    if body.identifier != p.identifier {
        return Err(ApiError::invalid(
            "identifier",
            ConfirmError::WrongIdentifier { expected: p.identifier.clone() }.to_string(),
        ));
    }
    let requested: Vec<TenantRecord> =
        tx.project_tenants(p.id).await?.into_iter().filter(|t| t.deletion == Some(TenantDeletion::Requested)).collect();
    drop(tx);
    let found = check_resources(&app, &requested).await?;

    let mut tx = app.store.write().await?;
    let (ws, p) = scope(&mut tx, &caller, &ws, &project).await?;
    tx.lock_project_tenants(p.id).await?;
    let tenants = tx.project_tenants(p.id).await?;
    let requested_now: Vec<Uuid> =
        tenants.iter().filter(|t| t.deletion == Some(TenantDeletion::Requested)).map(|t| t.id).collect();
    if requested_now != requested.iter().map(|t| t.id).collect::<Vec<_>>() {
        return Err(ApiError::conflict("the project's tenant deletions changed meanwhile; try again"));
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
    let next = match confirm_rule(&body.identifier, &p.identifier, &inputs) {
        Ok(next) => next,
        Err(ConfirmError::WrongIdentifier { .. }) => {
            return Err(ApiError::invalid("identifier", "does not match the project's identifier"));
        }
        Err(ConfirmError::NothingRequested) => {
            return Err(ApiError::conflict(format!("no deletion of {} waits for confirmation", p.identifier)));
        }
        Err(ConfirmError::ResourcesRemain) => {
            let left: Vec<String> = tenants
                .iter()
                .zip(&inputs)
                .filter(|(_, i)| !i.resources.is_empty() && i.mode == DeletionMode::Automatic)
                .map(|(t, i)| format!("{}: {}", t.platform, i.resources.join(", ")))
                .collect();
            return Err(ApiError::conflict(format!("remove these resources first: {}", left.join("; "))));
        }
    };
    let initiator = caller.initiator();
    for ((t, input), state) in tenants.iter().zip(&inputs).zip(next) {
        if state == t.deletion {
            continue;
        }
        tx.set_tenant_deletion(t.id, state, &input.resources, now).await?;
        if state == Some(TenantDeletion::Deleting) {
            tx.mark_dirty(Reach::Tenant(t.id), PRIORITY_URGENT).await?;
        }
        tx.append_event(
            Some(ws.id),
            EventKind::TenantDeletionConfirmed,
            now,
            &initiator,
            json!({"project": p.identifier, "platform": t.platform, "next": state.map(TenantDeletion::as_str)}),
        )
        .await?;
    }
    let tenants = tx.project_tenants(p.id).await?;
    tx.commit().await?;
    Ok(Json(view(&ws, &p, &tenants)))
}

fn to_pending((t, ws, project): (TenantRecord, String, String)) -> PendingDeletion {
    PendingDeletion {
        id: t.id,
        workspace: ws,
        project,
        platform: t.platform,
        external_id: t.external_id,
        name: t.name,
        requested_at: t.deletion_requested_at,
    }
}

/// Tenant deletions on a platform waiting for a platform engineer (DL3, AD5).
#[utoipa::path(get, path = "/api/v1/platforms/{platform}/deletions", tag = "deletion",
    params(("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<PendingDeletion>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn pending(
    State(app): State<AppState>,
    caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<Json<Page<PendingDeletion>>> {
    caller.require(Action::AdministerPlatforms)?;
    let mut tx = app.store.read().await?;
    let pf = tx
        .platform(&platform)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("platform {platform:?} does not exist")))?;
    let items = tx.deletions_awaiting_engineer(pf.id).await?.into_iter().map(to_pending).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// A pending tenant deletion of a platform, with its project, for a
/// platform engineer's decision: the project's tenants locked, and the state
/// checked under the lock, so two engineers deciding at once decide once.
async fn load_pending(tx: &mut Tx, platform: &str, id: Uuid) -> ApiResult<(TenantRecord, ProjectRecord)> {
    find_pending(tx, platform, id, true).await
}

/// A tenant deletion waiting for a platform engineer; `lock` takes the
/// project's tenants first (in a write transaction).
async fn find_pending(tx: &mut Tx, platform: &str, id: Uuid, lock: bool) -> ApiResult<(TenantRecord, ProjectRecord)> {
    let pf = tx
        .platform(platform)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("platform {platform:?} does not exist")))?;
    let missing = || ApiError::not_found(format!("platform {platform} has no tenant deletion {id}"));
    let t = tx.tenant_by_id(id).await?.filter(|t| t.platform_id == pf.id).ok_or_else(missing)?;
    if lock {
        tx.lock_project_tenants(t.project_id).await?;
    }
    let t = tx.tenant_by_id(id).await?.ok_or_else(missing)?;
    if t.deletion != Some(TenantDeletion::AwaitingEngineer) {
        return Err(ApiError::conflict("this tenant deletion does not wait for a platform engineer"));
    }
    let p = tx.project_by_id(t.project_id).await?.ok_or_else(|| ApiError::not_found("the tenant's project is gone"))?;
    Ok((t, p))
}

/// A platform engineer deleted the tenant by hand: Canopy first revokes
/// every assignment it manages there (an account said to be deleted may be
/// alive), then forgets the tenant, and the project goes when it was its
/// last tenant (DL1, DL3). The receipt lists what the platform confirmed
/// revoked, and says so when it could not be reached.
#[utoipa::path(post, path = "/api/v1/platforms/{platform}/deletions/{id}/confirm", tag = "deletion",
    params(("platform" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ManualDeletionReceipt), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn engineer_confirm(
    State(app): State<AppState>,
    caller: Caller,
    Path((platform, id)): Path<(String, Uuid)>,
) -> ApiResult<Json<ManualDeletionReceipt>> {
    caller.require(Action::AdministerPlatforms)?;
    // refuse what does not wait for an engineer before asking the platform
    find_pending(&mut app.store.read().await?, &platform, id, false).await?;
    let (withdrawal, lease) = match app.replicator.withdraw_everything(id).await {
        Ok(w) => w,
        Err(ReplicationError::NoTenant) => {
            return Err(ApiError::not_found(format!("platform {platform} has no tenant deletion {id}")));
        }
        Err(ReplicationError::Busy) => return Err(ApiError::conflict(ReplicationError::Busy.to_string())),
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let (t, p) = match load_pending(&mut tx, &platform, id).await {
        Ok(found) => found,
        Err(e) => {
            // decided meanwhile (declined): the tenant stays, and replication resumes
            drop(tx);
            app.replicator.release(&lease).await.map_err(|e| ApiError::Internal(e.to_string()))?;
            return Err(e);
        }
    };
    let ws = tx.workspace_by_id(p.workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
    let initiator = caller.initiator();
    let revoked: Vec<ConfirmedRevocation> = withdrawal
        .revoked
        .into_iter()
        .map(|(a, at)| ConfirmedRevocation { account: a.user, platform_role: a.platform_role, confirmed_at: at })
        .collect();
    let revoked_json: Vec<_> = revoked
        .iter()
        .map(|r| json!({"account": r.account, "platform_role": r.platform_role, "confirmed_at": rfc3339(Some(r.confirmed_at))}))
        .collect();
    tx.delete_tenant(t.id).await?;
    tx.append_event(
        Some(p.workspace_id),
        EventKind::TenantDeleted,
        now,
        &initiator,
        json!({"project": p.identifier, "platform": t.platform, "external_id": t.external_id, "by_hand": true,
               "revoked": revoked_json, "platform_error": withdrawal.failed}),
    )
    .await?;
    canopy_engine::deletion::settle_project(&mut tx, p.id, &initiator, now).await?;
    tx.commit().await?;
    Ok(Json(ManualDeletionReceipt {
        workspace: ws,
        project: p.identifier,
        platform: t.platform,
        external_id: t.external_id,
        revoked,
        platform_error: withdrawal.failed,
    }))
}

/// A platform engineer declines the tenant's deletion: the tenant stays, and
/// a project being deleted stays with only its declined tenants (DL5).
#[utoipa::path(post, path = "/api/v1/platforms/{platform}/deletions/{id}/decline", tag = "deletion",
    params(("platform" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn engineer_decline(
    State(app): State<AppState>,
    caller: Caller,
    Path((platform, id)): Path<(String, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerPlatforms)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let (t, p) = load_pending(&mut tx, &platform, id).await?;
    let initiator = caller.initiator();
    // a tenant deleted on its own simply stays; in a project deletion it is
    // kept declined until the other tenants are settled
    let state = p.deletion_requested_at.map(|_| TenantDeletion::Declined);
    tx.set_tenant_deletion(t.id, state, &[], now).await?;
    tx.append_event(
        Some(p.workspace_id),
        EventKind::TenantDeletionDeclined,
        now,
        &initiator,
        json!({"project": p.identifier, "platform": t.platform}),
    )
    .await?;
    canopy_engine::deletion::settle_project(&mut tx, p.id, &initiator, now).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
