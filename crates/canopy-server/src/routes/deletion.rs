//! Deleting projects and tenants (DL1-DL5, AD5): the use cases of
//! [`canopy_app::deletion`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{
    ConfirmDeletion, ConfirmedRevocation, ManualDeletionReceipt, Page, PendingDeletion, Problem, ProjectDeletion,
};
use canopy_app::deletion as uc;
use canopy_store::TenantRecord;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path};
use crate::mapping::deletion_view as view;

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
    Ok(Json(view(&uc::show(&app.store, &caller, (&ws, &project)).await?)))
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
    let d = uc::confirm(&app.store, &*app.platforms, &caller, now, (&ws, &project), &body.identifier).await?;
    Ok(Json(view(&d)))
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
    let items = uc::awaiting_engineer(&app.store, &caller, &platform).await?.into_iter().map(to_pending).collect();
    Ok(Json(Page { items, next_cursor: None }))
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
    let now = app.clock.now();
    let r = uc::engineer_confirm(&app.store, &*app.platforms, &caller, now, (&platform, id)).await?;
    Ok(Json(ManualDeletionReceipt {
        workspace: r.workspace,
        project: r.project,
        platform: r.platform,
        external_id: r.external_id,
        revoked: r
            .revoked
            .into_iter()
            .map(|r| ConfirmedRevocation {
                account: r.account,
                platform_role: r.platform_role,
                confirmed_at: r.confirmed_at,
            })
            .collect(),
        platform_error: r.platform_error,
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
    uc::engineer_decline(&app.store, &caller, app.clock.now(), (&platform, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
