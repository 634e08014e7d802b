//! Groups of users (ID2). Admins manage them; every signed-in caller may read
//! them, to invite and bind groups.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{AddGroupMember, CreateGroup, Group, GroupMember, Page, Problem, UpdateGroup};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::{DisplayName, Identifier, Subject, SubjectKind};
use canopy_store::{GroupRecord, Tx};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::members::{Removal, end_bindings_of_non_members, end_membership};
use crate::routes::requests::close_pending;
use crate::routes::{ListQuery, load_user, page};
use crate::validate;

fn to_group(g: GroupRecord) -> Group {
    Group {
        identifier: g.identifier,
        display_name: g.display_name,
        member_count: g.member_count,
        created_at: g.created_at,
    }
}

async fn load_group(tx: &mut Tx, identifier: &str) -> ApiResult<GroupRecord> {
    tx.group_by_identifier(identifier)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group {identifier:?} does not exist")))
}

/// Group membership changes are recorded in the installation history and in
/// every workspace where the group is a member, since they change access there (AC3).
async fn record_group_event(
    tx: &mut Tx,
    caller: &Caller,
    group: &GroupRecord,
    kind: EventKind,
    details: serde_json::Value,
    now: time::OffsetDateTime,
) -> ApiResult<()> {
    for (ws, _) in tx.direct_memberships(SubjectKind::Group, group.id).await? {
        tx.append_event(Some(ws), kind, now, &caller.initiator(), details.clone()).await?;
    }
    // the installation chain last: see canopy_store::Tx::append_event
    tx.append_event(None, kind, now, &caller.initiator(), details).await?;
    Ok(())
}

/// List groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Group>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Group>>> {
    let limit = q.limit()?;
    let mut tx = app.store.read().await?;
    let rows = tx.list_groups(q.cursor()?.as_deref(), limit).await?;
    Ok(Json(page(rows, limit, |g| g.identifier.clone(), to_group)))
}

/// Create a group (admins).
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroup, security(("bearer" = [])),
    responses((status = 201, body = Group), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    caller.require(Action::AdministerGroups)?;
    validate! {
        identifier: "identifier" => Identifier::parse(&body.identifier),
        display_name: "display_name" => DisplayName::parse(&body.display_name),
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    if tx.group_by_identifier(identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("identifier", format!("group {identifier} already exists")));
    }
    let g = tx.insert_group(identifier.as_str(), display_name.as_str(), now).await?;
    tx.append_event(
        None,
        EventKind::GroupCreated,
        now,
        &caller.initiator(),
        json!({"group": g.identifier, "display_name": g.display_name}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_group(g))))
}

/// Show a group.
#[utoipa::path(get, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Group), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, _caller: Caller, Path(group): Path<String>) -> ApiResult<Json<Group>> {
    let mut tx = app.store.read().await?;
    Ok(Json(to_group(load_group(&mut tx, &group).await?)))
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
    caller.require(Action::AdministerGroups)?;
    validate! { display_name: "display_name" => body.display_name.as_deref().map(DisplayName::parse).transpose() }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let before = load_group(&mut tx, &group).await?;
    if let Some(name) = display_name {
        tx.rename_group(before.id, name.as_str()).await?;
        tx.append_event(None, EventKind::GroupUpdated, now, &caller.initiator(),
            json!({"group": before.identifier, "old": {"display_name": before.display_name}, "new": {"display_name": name.as_str()}})).await?;
    }
    let after = load_group(&mut tx, &group).await?;
    tx.commit().await?;
    Ok(Json(to_group(after)))
}

/// Delete a group (admins). Its memberships and bindings end with it.
#[utoipa::path(delete, path = "/api/v1/groups/{group}", tag = "groups", params(("group" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(group): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerGroups)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let g = load_group(&mut tx, &group).await?;
    // requests naming the group close, saying why (finding 17)
    let memberships = tx.direct_memberships(SubjectKind::Group, g.id).await?;
    let also = memberships.iter().map(|(ws, _)| *ws);
    close_pending(&mut tx, Subject::group(g.id), None, also, &caller, "its group was deleted", now).await?;
    let name = format!("group:{}", g.identifier);
    let initiator = caller.initiator();
    let removal = Removal { initiator: &initiator, reason: "group deleted", now };
    let details = json!({"group": g.identifier});
    for (ws, role) in memberships {
        end_membership(&mut tx, ws, Subject::group(g.id), &name, role, &removal).await?;
        tx.append_event(Some(ws), EventKind::GroupDeleted, now, &initiator, details.clone()).await?;
    }
    tx.append_event(None, EventKind::GroupDeleted, now, &initiator, details).await?;
    tx.delete_group(g.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuse unless the caller administers groups or manages a workspace the
/// group is a member of: who the group gives access to is for those who
/// decide what it may access. True when the caller administers groups (and
/// so sees the members' e-mail addresses too).
async fn require_view_members(tx: &mut Tx, caller: &Caller, g: &GroupRecord) -> ApiResult<bool> {
    if caller.require(Action::AdministerGroups).is_ok() {
        return Ok(true);
    }
    for (ws_id, _) in tx.direct_memberships(SubjectKind::Group, g.id).await? {
        if let Some(ws) = tx.workspace_by_id(ws_id).await?
            && caller.require_in(tx, &ws, Action::ManageWorkspace).await.is_ok()
        {
            return Ok(false);
        }
    }
    Err(ApiError::Forbidden(format!(
        "the members of group {} are shown to admins and to managers of a workspace it belongs to",
        g.identifier
    )))
}

/// The members of a group (admins, and managers of a workspace the group is
/// a member of; their e-mail addresses to admins only).
#[utoipa::path(get, path = "/api/v1/groups/{group}/members", tag = "groups", params(("group" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Page<GroupMember>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_members(
    State(app): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<Json<Page<GroupMember>>> {
    let mut tx = app.store.read().await?;
    let g = load_group(&mut tx, &group).await?;
    let admin = require_view_members(&mut tx, &caller, &g).await?;
    let items = tx
        .group_members(g.id)
        .await?
        .into_iter()
        .map(|u| GroupMember {
            username: u.username,
            first_name: u.first_name,
            last_name: u.last_name,
            email: admin.then_some(u.email),
            active: u.active,
        })
        .collect();
    Ok(Json(Page { items, next_cursor: None }))
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
    caller.require(Action::AdministerGroups)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let g = load_group(&mut tx, &group).await?;
    let user = tx
        .user_by_username(&body.user)
        .await?
        .ok_or_else(|| ApiError::invalid("user", format!("user {:?} does not exist", body.user)))?;
    if tx.is_group_member(g.id, user.id).await? {
        return Err(ApiError::conflict_on(
            "user",
            format!("{} is already a member of {}", user.username, g.identifier),
        ));
    }
    tx.add_group_member(g.id, user.id, now).await?;
    record_group_event(
        &mut tx,
        &caller,
        &g,
        EventKind::GroupMemberAdded,
        json!({"group": g.identifier, "user": user.username}),
        now,
    )
    .await?;
    tx.commit().await?;
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
    caller.require(Action::AdministerGroups)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let g = load_group(&mut tx, &group).await?;
    let user = load_user(&mut tx, &username).await?;
    if !tx.is_group_member(g.id, user.id).await? {
        return Err(ApiError::not_found(format!("{username} is not a member of group {group}")));
    }
    tx.remove_group_member(g.id, user.id).await?;
    let initiator = caller.initiator();
    let removal = Removal { initiator: &initiator, reason: "left a member group", now };
    for (ws, _) in tx.direct_memberships(SubjectKind::Group, g.id).await? {
        end_bindings_of_non_members(&mut tx, ws, &[user.id], &removal).await?;
    }
    record_group_event(
        &mut tx,
        &caller,
        &g,
        EventKind::GroupMemberRemoved,
        json!({"group": g.identifier, "user": user.username}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
