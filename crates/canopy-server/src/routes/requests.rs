//! Four-eye requests (FE1–FE4, AD2): lists, and the decisions of
//! [`canopy_app::requests`].

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use canopy_api_types::{DecideRequest, Page, Problem, RoleRequest};
use canopy_app::requests::{self as uc, RequestView};
use canopy_domain::authz::Action;
use canopy_domain::four_eye::{self, RequestState};
use canopy_store::{RequestFilter, Tx};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath as Path, ApiQuery, OptionalJson};
use crate::mapping::to_request;
use crate::routes::{check_limit, decode_cursor, load_workspace, page};

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

fn state_filter(state: Option<&str>) -> ApiResult<Option<RequestState>> {
    match state {
        None => Ok(Some(RequestState::Pending)),
        Some("all") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("state", format!("{}, or all", e.0))),
    }
}

/// A page of requests, newest first, each saying whether it waits for an admin.
async fn list_page(
    tx: &mut Tx,
    filter: RequestFilter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Page<RoleRequest>> {
    let limit = check_limit(limit)?;
    let bad_cursor = || ApiError::invalid("cursor", "is not a cursor this API returned");
    let after = match decode_cursor(cursor)? {
        None => None,
        Some(c) => {
            let (t, id) = c.split_once('/').ok_or_else(bad_cursor)?;
            let t = t.parse::<i64>().ok().and_then(|t| canopy_store::from_us(t).ok()).ok_or_else(bad_cursor)?;
            Some((t, Uuid::parse_str(id).map_err(|_| bad_cursor())?))
        }
    };
    let rows = tx.role_requests(filter, after, i64::from(limit) + 1).await?;
    let mut managers: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    let mut shortfall = Vec::with_capacity(rows.len());
    for q in &rows {
        if q.state != RequestState::Pending {
            shortfall.push(false);
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = managers.entry(q.workspace_id) {
            e.insert(tx.workspace_managers(q.workspace_id).await?.into_iter().map(|m| m.id).collect());
        }
        let others = managers.get(&q.workspace_id).map_or(0, |m| m.iter().filter(|m| **m != q.requested_by_id).count());
        shortfall.push(four_eye::needs_admin(q.approvals_required, others));
    }
    let mut shortfall = shortfall.into_iter();
    Ok(page(
        rows,
        limit,
        |q| format!("{}/{}", canopy_store::to_us(q.requested_at), q.id),
        |q| to_request(RequestView { request: q, needs_admin: shortfall.next().unwrap_or(false) }),
    ))
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
    let state = state_filter(q.state.as_deref())?;
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let filter = RequestFilter { workspace_id: Some(ws.id), state };
    Ok(Json(list_page(&mut tx, filter, q.limit, q.cursor.as_deref()).await?))
}

/// Every workspace's four-eye requests, pending ones by default (AD2).
#[utoipa::path(get, path = "/api/v1/admin/requests", tag = "admin", params(AdminRequestQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<RoleRequest>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn admin_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AdminRequestQuery>,
) -> ApiResult<Json<Page<RoleRequest>>> {
    caller.require(Action::AdministerInstallation)?;
    let state = state_filter(q.state.as_deref())?;
    let mut tx = app.store.read().await?;
    let workspace_id = match &q.workspace {
        Some(w) => Some(load_workspace(&mut tx, w).await?.id),
        None => None,
    };
    let filter = RequestFilter { workspace_id, state };
    Ok(Json(list_page(&mut tx, filter, q.limit, q.cursor.as_deref()).await?))
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
