//! Four-eye requests (FE1–FE4, AD2): lists, and the decisions of
//! [`canopy_app::requests`].

use axum::Json;
use axum::extract::State;
use canopy_api_types::{DecideRequest, Page, Problem, RoleRequest};
use canopy_app::paging::Paging;
use canopy_app::requests as uc;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiPath as Path, ApiQuery, OptionalJson};
use crate::mapping::to_request;
use crate::routes::to_page;

/// `?state=&limit=&cursor=` of a workspace's requests.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// `pending` (the default), `approved`, `declined`, `void` or `all`.
    pub state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `?workspace=&state=&limit=&cursor=` of the admin area's requests.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminRequestQuery {
    /// Only this workspace's requests.
    pub workspace: Option<String>,
    /// `pending` (the default), `approved`, `declined`, `void` or `all`.
    pub state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A workspace's four-eye requests, pending ones by default (FE2).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/requests", tag = "requests",
    params(("ws" = String, Path), RequestQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<RoleRequest>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<Json<Page<RoleRequest>>> {
    let state = uc::parse_state(q.state.as_deref())?;
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(to_page(uc::list(&app.store, &caller, &ws, state, &paging).await?, to_request)))
}

/// Every workspace's four-eye requests, pending ones by default (AD2).
#[utoipa::path(get, path = "/api/v1/admin/requests", tag = "admin", params(AdminRequestQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<RoleRequest>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn admin_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AdminRequestQuery>,
) -> ApiResult<Json<Page<RoleRequest>>> {
    let state = uc::parse_state(q.state.as_deref())?;
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    let page = uc::list_all(&app.store, &caller, q.workspace.as_deref(), state, &paging).await?;
    Ok(Json(to_page(page, to_request)))
}

/// One request of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/requests/{id}", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<RoleRequest>> {
    Ok(Json(to_request(uc::show(&app.store, &caller, (&ws, &id)).await?)))
}

/// Approve a request (FE2–FE4). It applies once it has its approvals from
/// managers other than the requester, or at once when an admin approves.
/// Nobody approves their own request (403); approving twice or a decided
/// request is a conflict (409). A request the world has moved past (its
/// binding removed, its expiration passed) ends `void` instead of applying.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/requests/{id}/approve", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), request_body(content = Option<DecideRequest>), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<DecideRequest>,
) -> ApiResult<Json<RoleRequest>> {
    let now = app.clock.now();
    Ok(Json(to_request(uc::approve(&app.store, &caller, now, (&ws, &id), body.reason.as_deref()).await?)))
}

/// Decline a request, or withdraw one's own: it ends without effect (FE2).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/requests/{id}/decline", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), request_body(content = Option<DecideRequest>), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decline(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<DecideRequest>,
) -> ApiResult<Json<RoleRequest>> {
    let now = app.clock.now();
    Ok(Json(to_request(uc::decline(&app.store, &caller, now, (&ws, &id), body.reason.as_deref()).await?)))
}
