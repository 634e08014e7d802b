//! Workspaces (WS1).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateWorkspace, Page, Problem, UpdateWorkspace, Workspace};
use canopy_domain::authz::{Action, ActorKind};
use canopy_domain::history::EventKind;
use canopy_domain::{DisplayName, Identifier, SubjectKind, WorkspaceRole};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::{four_eye_of, to_setting, to_workspace, workspace_page};
use crate::routes::four_eye;
use crate::routes::{ListQuery, load_workspace};
use crate::validate;

/// The workspaces the caller is a member of (directly or through a group).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Workspace>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Workspace>>> {
    let limit = q.limit()?;
    let cursor = q.cursor()?;
    let mut tx = app.store.read().await?;
    let rows = match caller.actor.kind {
        ActorKind::User => tx.list_workspaces(Some(caller.actor.id), cursor.as_deref(), limit).await?,
        ActorKind::InstallationKey => tx.list_workspaces(None, cursor.as_deref(), limit).await?,
        ActorKind::WorkspaceKey { workspace_id, .. } => tx.workspace_by_id(workspace_id).await?.into_iter().collect(),
    };
    let mut roles = Vec::with_capacity(rows.len());
    for w in &rows {
        roles.push(caller.workspace_role(&mut tx, w).await?);
    }
    Ok(Json(workspace_page(&mut tx, rows, limit, roles).await?))
}

/// Create a workspace; the creating person becomes its owner.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace, security(("bearer" = [])),
    responses((status = 201, body = Workspace), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<Workspace>)> {
    caller.require(Action::CreateWorkspace)?;
    validate! {
        identifier: "identifier" => Identifier::parse(&body.identifier),
        display_name: "display_name" => DisplayName::parse(&body.display_name),
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    if tx.workspace_by_identifier(identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("identifier", format!("workspace {identifier} already exists")));
    }
    let ws = tx.insert_workspace(identifier.as_str(), display_name.as_str(), now).await?;
    let initiator = caller.initiator();
    tx.append_event(
        Some(ws.id),
        EventKind::WorkspaceCreated,
        now,
        &initiator,
        json!({"workspace": ws.identifier, "display_name": ws.display_name}),
    )
    .await?;
    let mut my_role = None;
    if caller.actor.is_user() {
        let role = WorkspaceRole::Owner;
        tx.upsert_member(ws.id, SubjectKind::User, caller.actor.id, role, &caller.actor.name, now).await?;
        tx.append_event(
            Some(ws.id),
            EventKind::MemberAdded,
            now,
            &initiator,
            json!({"subject": format!("user:{}", caller.actor.name), "role": role.as_str()}),
        )
        .await?;
        my_role = Some(role);
    }
    // the installation chain records the new chain, so that its deletion is
    // detected even with the workspace (SE7); installation chain last
    tx.append_event(
        None,
        EventKind::HistoryChainCreated,
        now,
        &initiator,
        canopy_domain::history::chain_created_details(&ws.id.to_string(), &ws.identifier),
    )
    .await?;
    let four_eye = four_eye_of(&mut tx, ws.id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_workspace(ws, my_role, four_eye))))
}

/// Show a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Workspace), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller, Path(ws): Path<String>) -> ApiResult<Json<Workspace>> {
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let role = caller.workspace_role(&mut tx, &ws).await?;
    let four_eye = four_eye_of(&mut tx, ws.id).await?;
    Ok(Json(to_workspace(ws, role, four_eye)))
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
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let mut ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    if body.four_eye.is_some() {
        // managers must not switch off the control that checks them
        caller.require(Action::AdministerInstallation)?;
    }
    validate! { display_name: "display_name" => body.display_name.as_deref().map(DisplayName::parse).transpose() }
    let four_eye = match body.four_eye {
        Some(Some(change)) => {
            let current = tx.effective_four_eye(ws.id).await?;
            Some(Some(four_eye("four_eye", current, change).map_err(|e| ApiError::Invalid(vec![e]))?))
        }
        Some(None) => Some(None),
        None => None,
    };
    if let Some(name) = display_name {
        tx.rename_workspace(ws.id, name.as_str()).await?;
        tx.append_event(
            Some(ws.id),
            EventKind::WorkspaceRenamed,
            now,
            &caller.initiator(),
            json!({"old": {"display_name": ws.display_name}, "new": {"display_name": name.as_str()}}),
        )
        .await?;
        ws.display_name = name.into_string();
    }
    if let Some(setting) = four_eye {
        let old = tx.workspace_four_eye(ws.id).await?;
        if old != setting {
            tx.set_workspace_four_eye(ws.id, setting).await?;
            let show = |f: Option<canopy_domain::four_eye::FourEye>| f.map(to_setting);
            tx.append_event(
                Some(ws.id),
                EventKind::FourEyeChanged,
                now,
                &caller.initiator(),
                json!({"old": show(old), "new": show(setting)}),
            )
            .await?;
        }
    }
    let role = caller.workspace_role(&mut tx, &ws).await?;
    let four_eye = four_eye_of(&mut tx, ws.id).await?;
    tx.commit().await?;
    Ok(Json(to_workspace(ws, role, four_eye)))
}

/// Delete a workspace (owners). Refused while it has projects; its history is kept.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}", tag = "workspaces", params(("ws" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(ws): Path<String>) -> ApiResult<StatusCode> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::OwnWorkspace).await?;
    // rows before history chains, as every other path takes them
    tx.lock_workspace(ws.id).await?;
    let projects = tx.count_projects(ws.id).await?;
    if projects > 0 {
        return Err(ApiError::conflict(format!(
            "workspace {} still has {projects} project(s); delete them first",
            ws.identifier
        )));
    }
    tx.append_event(
        Some(ws.id),
        EventKind::WorkspaceDeleted,
        now,
        &caller.initiator(),
        json!({"workspace": ws.identifier}),
    )
    .await?;
    tx.delete_workspace(ws.id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
