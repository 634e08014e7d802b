//! Groups of users (ID2). Admins manage them; every signed-in caller may read
//! them, to invite and bind groups. Changes are use cases of [`canopy_app::groups`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{AddGroupMember, CreateGroup, Group, GroupMember, Page, Problem, UpdateGroup};
use canopy_app::groups as uc;
use canopy_store::GroupRecord;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, to_page};

fn to_group(g: GroupRecord) -> Group {
    Group {
        identifier: g.identifier,
        display_name: g.display_name,
        member_count: g.member_count,
        provisioned: g.provisioned,
        created_at: g.created_at,
    }
}

/// List groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Group>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Group>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(uc::list(&app.store, &caller, &paging).await?, to_group)))
}

/// Create a group (admins).
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup, security(("bearer" = [])),
    responses((status = 201, body = Group), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    let names = (body.identifier.as_str(), body.display_name.as_str());
    let g = uc::create(&app.store, &caller, app.clock.now(), names).await?;
    Ok((StatusCode::CREATED, Json(to_group(g))))
}

/// Show a group.
#[utoipa::path(get, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Group), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(group): Path<String>) -> ApiResult<Json<Group>> {
    Ok(Json(to_group(uc::show(&app.store, &caller, &group).await?)))
}

/// Rename a group (admins).
#[utoipa::path(patch, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), request_body = UpdateGroup,
    security(("bearer" = [])), responses((status = 200, body = Group), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> ApiResult<Json<Group>> {
    let name = body.display_name.as_deref();
    Ok(Json(to_group(uc::rename(&app.store, &caller, app.clock.now(), &group, name).await?)))
}

/// Delete a group (admins). Its memberships and bindings end with it.
#[utoipa::path(delete, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(group): Path<String>) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a group (admins, and managers of a workspace the group is
/// a member of; their e-mail addresses to admins only).
#[utoipa::path(get, path = "/api/v1/groups/{group}/members", tag = "groups", params(("group" = String, Path), ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<GroupMember>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_members(
    State(app): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<GroupMember>>> {
    let paging = q.paging()?;
    let (members, with_email) = uc::members(&app.store, &caller, &group, &paging).await?;
    Ok(Json(to_page(members, |u| GroupMember {
        username: u.username,
        first_name: u.first_name,
        last_name: u.last_name,
        email: with_email.then_some(u.email),
        active: u.active,
    })))
}

/// Add a user to a group (admins). They gain every role the group holds (AC3, WS4).
#[utoipa::path(post, path = "/api/v1/groups/{group}/members", tag = "groups", params(("group" = String, Path)), request_body = AddGroupMember,
    security(("bearer" = [])), responses((status = 201, body = GroupMember), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<AddGroupMember>,
) -> ApiResult<(StatusCode, Json<GroupMember>)> {
    let user = uc::add_member(&app.store, &caller, app.clock.now(), (&group, &body.user)).await?;
    Ok((
        StatusCode::CREATED,
        Json(GroupMember {
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            // adding members is for admins, who see addresses
            email: Some(user.email),
            active: user.active,
        }),
    ))
}

/// Remove a user from a group (admins). They lose what the group gave them (AC3).
#[utoipa::path(delete, path = "/api/v1/groups/{group}/members/{user}", tag = "groups",
    params(("group" = String, Path), ("user" = String, Path, description = "username")), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((group, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    uc::remove_member(&app.store, &caller, app.clock.now(), (&group, &username)).await?;
    Ok(StatusCode::NO_CONTENT)
}
