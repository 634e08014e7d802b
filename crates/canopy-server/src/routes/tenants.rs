//! A project's tenants (TN3, TN5, PR2): one per platform, replicated by the
//! engine from the dirty-tenant rows their changes write.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateTenant, Page, PlannedAssignment, Problem, Tenant, TenantPlan};
use canopy_app::tenants::{self as uc, NewTenantInput};
use canopy_domain::replication::Assignment;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path};
use crate::mapping::to_tenant;

/// A project's tenants with their replication status.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/tenants", tag = "tenants",
    params(("ws" = String, Path), ("project" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<Tenant>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
) -> ApiResult<Json<Page<Tenant>>> {
    let (ws, p, tenants) = uc::list(&app.store, &caller, (&ws, &project)).await?;
    let items = tenants.into_iter().map(|t| to_tenant(t, &ws.identifier, &p.identifier)).collect();
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
    let input = NewTenantInput { platform: body.platform, landing_zone: body.landing_zone };
    let now = app.clock.now();
    let (ws, p, t) = uc::create(&app.store, &caller, now, (&ws, &project), input).await?;
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
    let (ws, p, t) = uc::show(&app.store, &caller, (&ws, &project, &platform)).await?;
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
    let (ws, p, t) = uc::replicate(&app.store, &caller, app.clock.now(), (&ws, &project, &platform)).await?;
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
    let (t, preview) = uc::plan(&app.store, &*app.platforms, &caller, (&ws, &project, &platform)).await?;
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
