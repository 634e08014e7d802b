//! Workspaces (WS1).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateWorkspace, Page, Problem, UpdateWorkspace, Workspace};
use canopy_app::settings::FourEyeChange;
use canopy_app::workspaces::{self as uc, WorkspaceChange};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::to_workspace;
use crate::routes::{ListQuery, to_page};

/// The workspaces the caller is a member of (directly or through a group).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Workspace>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Workspace>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(uc::list(&app.store, &caller, &paging).await?, to_workspace)))
}

/// Create a workspace; the creating person becomes its owner.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace, security(("bearer" = [])),
    responses((status = 201, body = Workspace), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<Workspace>)> {
    let names = (body.identifier.as_str(), body.display_name.as_str());
    let view = uc::create(&app.store, &caller, app.clock.now(), names).await?;
    Ok((StatusCode::CREATED, Json(to_workspace(view))))
}

/// Show a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Workspace), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(ws): Path<String>) -> ApiResult<Json<Workspace>> {
    Ok(Json(to_workspace(uc::show(&app.store, &caller, &ws).await?)))
}

/// Rename a workspace (managers), or give it its own four-eye setting
/// (admins; `"four_eye": null` makes it follow the installation's again).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)), request_body = UpdateWorkspace,
    security(("bearer" = [])), responses((status = 200, body = Workspace), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> ApiResult<Json<Workspace>> {
    let change = WorkspaceChange {
        display_name: body.display_name,
        four_eye: body.four_eye.map(|c| c.map(|c| FourEyeChange { enabled: c.enabled, approvals: c.approvals })),
    };
    Ok(Json(to_workspace(uc::update(&app.store, &caller, app.clock.now(), &ws, change).await?)))
}

/// Delete a workspace (owners). Refused while it has projects; its history is kept.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(ws): Path<String>) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &ws).await?;
    Ok(StatusCode::NO_CONTENT)
}
