//! Users: local accounts, their installation roles, deactivation (AC10);
//! changes are use cases of [`canopy_app::users`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateUser, Page, Problem, SessionsEnded, UpdateUser, User};
use canopy_app::paging::Paging;
use canopy_app::users::{self as uc, NewUserInput, UserUpdate};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery, ClientAddress};
use crate::routes::{to_page, to_user};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Matches username, e-mail, first and last name.
    #[param(max_length = 100)]
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List users (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<User>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<Page<User>>> {
    let paging = Paging::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(to_page(uc::list(&app.store, &caller, q.q.as_deref(), &paging).await?, to_user)))
}

/// Create a local account (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let input = NewUserInput {
        username: body.username,
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        password: body.password,
        installation_roles: body.installation_roles,
    };
    let user = uc::create(&app.store, &app.passwords, &caller, app.clock.now(), input).await?;
    Ok((StatusCode::CREATED, Json(to_user(user))))
}

/// Show a user (admins, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])), responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(username): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(to_user(uc::show(&app.store, &caller, &username).await?)))
}

/// Change a user. Admins change anything; users change their own names and
/// password, giving the current one (`current_password`, SE6; wrong guesses
/// are throttled like sign-ins). A new password ends every session of the
/// account. `{"active": false}` deactivates: the account loses all access
/// at once and its sessions end (AC10).
#[utoipa::path(patch, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    request_body = UpdateUser, security(("bearer" = [])),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    ClientAddress(client): ClientAddress,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<User>> {
    let input = UserUpdate {
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        password: body.password,
        current_password: body.current_password,
        active: body.active,
        installation_roles: body.installation_roles,
    };
    let now = app.clock.now();
    Ok(Json(to_user(uc::update(&app.store, &app.passwords, &caller, (now, client), &username, input).await?)))
}

/// Delete a user (admins). Their memberships and bindings end with the account.
#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: end every session of a user (the user themself, or
/// admins; recorded in the history).
#[utoipa::path(delete, path = "/api/v1/users/{user}/sessions", tag = "users", params(("user" = String, Path, description = "username")),
    security(("bearer" = [])),
    responses((status = 200, body = SessionsEnded), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn end_sessions(
    State(app): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<SessionsEnded>> {
    let sessions_ended = uc::end_sessions(&app.store, &caller, app.clock.now(), &username).await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}
