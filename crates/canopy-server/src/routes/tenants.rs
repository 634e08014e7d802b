//! A project's tenants (TN3, TN5, PR2): one per platform, replicated by the
//! engine from the dirty-tenant rows their changes write.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateTenant, Page, PlannedAssignment, Problem, Tenant, TenantPlan};
use canopy_app::platforms::PlatformCallError;
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::replication::{Assignment, tenant_name};
use canopy_store::{PRIORITY_NORMAL, ProjectRecord, Reach, TenantRecord, Tx, WorkspaceRecord};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path};
use crate::mapping::to_tenant;
use crate::routes::{load_project, load_workspace};

async fn load_tenant(tx: &mut Tx, p: &ProjectRecord, platform: &str) -> ApiResult<TenantRecord> {
    tx.tenant(p.id, platform).await?.ok_or_else(|| {
        ApiError::not_found(format!("project {:?} has no tenant on platform {platform:?}", p.identifier))
    })
}

/// Load the workspace and project of a path and authorise the caller.
async fn scope(
    tx: &mut Tx,
    caller: &Caller,
    ws: &str,
    project: &str,
    action: Action,
) -> ApiResult<(WorkspaceRecord, ProjectRecord)> {
    let ws = load_workspace(tx, ws).await?;
    caller.require_in(tx, &ws, action).await?;
    let p = load_project(tx, &ws, project).await?;
    Ok((ws, p))
}

/// A project's tenants with their replication status.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<Tenant>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
) -> ApiResult<Json<Page<Tenant>>> {
    let mut tx = app.store.read().await?;
    let (ws, p) = scope(&mut tx, &caller, &ws, &project, Action::ViewWorkspace).await?;
    let items =
        tx.project_tenants(p.id).await?.into_iter().map(|t| to_tenant(t, &ws.identifier, &p.identifier)).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// Add a tenant on a platform to a project (managers). Replication creates
/// it on the platform and gives every bound person the mapped role.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path)), request_body = CreateTenant, security(("bearer" = [])),
    responses((status = 201, body = Tenant), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let (ws, p) = scope(&mut tx, &caller, &ws, &project, Action::ManageWorkspace).await?;
    let platform = tx
        .platform(&body.platform)
        .await?
        .ok_or_else(|| ApiError::invalid("platform", format!("platform {:?} does not exist", body.platform)))?;
    if !app.platforms.can_hold_tenants(platform.platform_type) {
        return Err(ApiError::invalid(
            "platform",
            format!("Canopy cannot replicate to {} platforms yet", platform.platform_type),
        ));
    }
    let zone = match body.landing_zone.as_deref() {
        Some(z) => Some(tx.landing_zone(platform.id, z).await?.ok_or_else(|| {
            ApiError::invalid("landing_zone", format!("platform {} has no landing zone {z:?}", platform.identifier))
        })?),
        None if platform.landing_zone_required => {
            return Err(ApiError::invalid(
                "landing_zone",
                format!("platform {} requires a landing zone", platform.identifier),
            ));
        }
        None => None,
    };
    if p.deletion_requested_at.is_some() {
        return Err(ApiError::conflict(format!("project {} is being deleted", p.identifier)));
    }
    if tx.tenant(p.id, &platform.identifier).await?.is_some() {
        return Err(ApiError::conflict_on(
            "platform",
            format!("project {} already has a tenant on platform {}", p.identifier, platform.identifier),
        ));
    }
    let name = |id| tenant_name(&ws.identifier, &p.identifier, id);
    let t = tx.insert_tenant(p.id, platform.id, zone.as_ref().map(|z| z.id), name, now).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::TenantCreated,
        now,
        &caller.initiator(),
        json!({"project": p.identifier, "platform": platform.identifier, "landing_zone": t.landing_zone, "name": t.name}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_tenant(t, &ws.identifier, &p.identifier))))
}

/// A tenant: replication status and the platform's last error (TN5).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path), ("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Tenant), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, platform)): Path<(String, String, String)>,
) -> ApiResult<Json<Tenant>> {
    let mut tx = app.store.read().await?;
    let (ws, p) = scope(&mut tx, &caller, &ws, &project, Action::ViewWorkspace).await?;
    let t = load_tenant(&mut tx, &p, &platform).await?;
    Ok(Json(to_tenant(t, &ws.identifier, &p.identifier)))
}

/// Delete a tenant on its own (managers, DL1): its deletion is requested
/// (202) and confirmed by typing the project identifier, by the same rules
/// as a project's.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path), ("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 202, body = canopy_api_types::ProjectDeletion), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, platform)): Path<(String, String, String)>,
) -> ApiResult<axum::response::Response> {
    let now = app.clock.now();
    let scope = (ws.as_str(), project.as_str(), Some(platform.as_str()));
    let outcome = canopy_app::deletion::request(&app.store, &*app.platforms, &caller, now, scope).await?;
    Ok(crate::mapping::deletion_requested(outcome))
}

/// Replicate a tenant again now (managers, TN5): it converges on the current
/// bindings and repairs drift. Answers 202; the status follows.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/replicate", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path), ("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 202, body = Tenant), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn replicate(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, platform)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let (ws, p) = scope(&mut tx, &caller, &ws, &project, Action::ManageWorkspace).await?;
    let t = load_tenant(&mut tx, &p, &platform).await?;
    tx.mark_dirty(Reach::Tenant(t.id), PRIORITY_NORMAL).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::TenantReplicationRequested,
        now,
        &caller.initiator(),
        json!({"project": p.identifier, "platform": t.platform}),
    )
    .await?;
    let t = load_tenant(&mut tx, &p, &platform).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(to_tenant(t, &ws.identifier, &p.identifier))))
}

fn planned(list: impl IntoIterator<Item = Assignment<String>>) -> Vec<PlannedAssignment> {
    list.into_iter().map(|a| PlannedAssignment { account: a.user, platform_role: a.platform_role }).collect()
}

/// What replication would change in a tenant now, without changing it
/// (managers): the desired assignments, what the platform holds, and the
/// difference, with drift made outside Canopy told apart.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants/{platform}/plan", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path), ("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = TenantPlan), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 502, body = Problem)))]
pub async fn plan(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, platform)): Path<(String, String, String)>,
) -> ApiResult<Json<TenantPlan>> {
    let mut tx = app.store.read().await?;
    let (_, p) = scope(&mut tx, &caller, &ws, &project, Action::ManageWorkspace).await?;
    let t = load_tenant(&mut tx, &p, &platform).await?;
    drop(tx);
    let preview = app.platforms.preview(t.id).await.map_err(|e| match e {
        PlatformCallError::Internal(cause) => ApiError::Internal(cause),
        PlatformCallError::NoTenant => ApiError::not_found(format!("the tenant on {platform} is gone")),
        PlatformCallError::Busy => ApiError::conflict(PlatformCallError::Busy.to_string()),
        PlatformCallError::Platform(e) => ApiError::Upstream(format!("platform {platform}: {e}")),
    })?;
    Ok(Json(TenantPlan {
        platform: t.platform,
        desired: planned(preview.desired),
        actual: planned(preview.actual),
        grant: planned(preview.changes.grant),
        revoke: planned(preview.changes.revoke),
        drift_missing: planned(preview.drift.grant),
        drift_unexpected: planned(preview.drift.revoke),
        drift_policy: preview.drift_policy.as_str().to_owned(),
    }))
}
