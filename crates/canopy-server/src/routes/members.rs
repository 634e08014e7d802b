//! Workspace access: members, invitations and type-ahead (WS3–WS6, AC9);
//! changes are use cases of [`canopy_app::members`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{InviteMember, Member, Page, Problem, SearchResult, UpdateMember};
use canopy_app::members::{self as uc, Invitee};
use canopy_domain::WorkspaceRole;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::to_member;
use crate::routes::{ListQuery, subject_string, to_page};

fn parse_role(raw: &str) -> ApiResult<WorkspaceRole> {
    raw.parse().map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("role", e.to_string()))
}

/// Current access: every user and group with their role, who granted it and
/// when, and pending invitations (WS5).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path), ListQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Member>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Member>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(uc::list(&app.store, &caller, &ws, &paging).await?, to_member)))
}

/// Invite a user, an e-mail address or a group with a workspace role (WS3, WS4).
///
/// An e-mail address that no account has becomes a pending invitation, which
/// turns into membership when an account with that address first signs in.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/members", tag = "members", params(("ws" = String, Path)), request_body = InviteMember,
    security(("bearer" = [])),
    responses((status = 201, body = Member), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn invite(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<InviteMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let invitee = match (body.user, body.email, body.group) {
        (Some(user), None, None) => Invitee::User(user),
        (None, Some(email), None) => Invitee::Email(email),
        (None, None, Some(group)) => Invitee::Group(group),
        _ => return Err(ApiError::invalid("user", "give exactly one of user, email or group")),
    };
    let role = parse_role(&body.role)?;
    let now = app.clock.now();
    let public_url = app.config.public_url.as_deref();
    let member = uc::invite(&app.store, &caller, now, &ws, (invitee, role), public_url).await?;
    Ok((StatusCode::CREATED, Json(to_member(member))))
}

/// Change the workspace role of a member or of a pending invitation (WS6).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/members/{subject}", tag = "members",
    params(("ws" = String, Path), ("subject" = String, Path, description = "user:NAME, group:IDENTIFIER or email:ADDRESS")),
    request_body = UpdateMember, security(("bearer" = [])),
    responses((status = 200, body = Member), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, subject)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> ApiResult<Json<Member>> {
    let role = parse_role(&body.role)?;
    let now = app.clock.now();
    Ok(Json(to_member(uc::change_role(&app.store, &caller, now, (&ws, &subject), role).await?)))
}

/// Remove a member (or withdraw an invitation). The subject's project
/// bindings in this workspace end with the membership (WS6).
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{subject}", tag = "members",
    params(("ws" = String, Path), ("subject" = String, Path, description = "user:NAME, group:IDENTIFIER or email:ADDRESS")),
    security(("bearer" = [])), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, subject)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = app.clock.now();
    uc::remove(&app.store, &caller, now, (&ws, &subject)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Part of a first or last name, e-mail, username, group name or identifier.
    #[param(min_length = 1, max_length = 100)]
    pub q: String,
    /// At most this many matches, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// Type-ahead over the workspace's users and groups (AC9).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/search", tag = "members", params(("ws" = String, Path), SearchQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<SearchResult>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Page<SearchResult>>> {
    let items = uc::search(&app.store, &caller, &ws, &q.q, q.limit)
        .await?
        .into_iter()
        .map(|r| SearchResult {
            kind: r.kind.as_str().into(),
            subject: subject_string(r.kind, &r.name),
            name: r.name,
            display_name: r.display_name,
            email: r.email,
        })
        .collect();
    Ok(Json(Page { items, next_cursor: None }))
}
