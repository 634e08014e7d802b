//! Project bindings: who holds which project role, possibly until when (AC1–AC7).
//! Each change is a use case of [`canopy_app::bindings`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canopy_api_types::{Binding, CreateBinding, Page, Problem, RoleRequest, UpdateBinding};
use canopy_app::bindings::{self as uc, BindingChange, NewBindingInput, Outcome, SubjectName};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::{to_binding, to_request};
use crate::routes::{ListQuery, to_page};

/// The answer to a change of a binding: `status` with the binding when done,
/// `202 Accepted` with the pending request where four-eye approval is needed.
fn answer<T>(outcome: Outcome<T>, status: StatusCode, body: impl FnOnce(T) -> Option<Binding>) -> Response {
    match outcome {
        Outcome::Done(done) => match body(done) {
            Some(b) => (status, Json(b)).into_response(),
            None => status.into_response(),
        },
        Outcome::Pending(view) => (StatusCode::ACCEPTED, Json(to_request(*view))).into_response(),
    }
}

/// List a project's bindings.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Binding>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Binding>>> {
    let paging = q.paging()?;
    let now = app.clock.now();
    let rows = uc::list(&app.store, &caller, (&ws, &project), &paging).await?;
    Ok(Json(to_page(rows, |b| to_binding(b, now))))
}

/// Bind a user or a group to the project with a project role (AC1, AC2, AC7).
///
/// The subject must be a member of the workspace. A subject may hold several
/// roles; binding the same role twice is a conflict unless the earlier
/// binding has expired, which this one then replaces. Where the workspace
/// needs four-eye approval (FE1), the answer is `202` with the pending request.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path)), request_body = CreateBinding, security(("bearer" = [])),
    responses((status = 201, body = Binding), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateBinding>,
) -> ApiResult<Response> {
    let subject = match (body.user, body.group) {
        (Some(user), None) => SubjectName::User(user),
        (None, Some(group)) => SubjectName::Group(group),
        _ => return Err(ApiError::invalid("user", "give exactly one of user or group")),
    };
    let now = app.clock.now();
    let input =
        NewBindingInput { subject, role: body.role, expires_at: body.expires_at, justification: body.justification };
    let outcome = uc::add(&app.store, &caller, now, (&ws, &project), input).await?;
    Ok(answer(outcome, StatusCode::CREATED, |b| Some(to_binding(b, now))))
}

/// Change a binding's role or expiration date (AC5, AC7); `"expires_at": null`
/// removes the expiry. Where the workspace needs four-eye approval (FE1), the
/// answer is `202` with the pending request.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path)), request_body = UpdateBinding, security(("bearer" = [])),
    responses((status = 200, body = Binding), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateBinding>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let input = BindingChange { role: body.role, expires_at: body.expires_at, justification: body.justification };
    let outcome = uc::change(&app.store, &caller, now, (&ws, &project, &id), input).await?;
    Ok(answer(outcome, StatusCode::OK, |b| Some(to_binding(b, now))))
}

/// `?justification=` of a binding's removal, required where it needs approval.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    pub justification: Option<String>,
}

/// Remove a binding (AC6). Binding the subject again later restores the
/// access. Where the workspace needs four-eye approval (FE1), the answer is
/// `202` with the pending request.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path), RemoveQuery), security(("bearer" = [])),
    responses((status = 204), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> ApiResult<Response> {
    let now = app.clock.now();
    let outcome = uc::remove(&app.store, &caller, now, (&ws, &project, &id), q.justification.as_deref()).await?;
    Ok(answer(outcome, StatusCode::NO_CONTENT, |()| None))
}
