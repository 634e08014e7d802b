//! Project roles, configured by admins (AC4).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateProjectRole, Page, Problem, ProjectRole, UpdateProjectRole};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::{DisplayName, InvalidValue, RoleIdentifier};
use canopy_store::{ProjectRoleRecord, Tx};
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path};
use crate::validate;

fn to_role(r: ProjectRoleRecord) -> ProjectRole {
    ProjectRole { identifier: r.identifier, display_name: r.display_name, description: r.description }
}

fn check_description(d: &str) -> Result<String, InvalidValue> {
    let d = d.trim();
    if d.chars().count() > 500 {
        return Err(InvalidValue("must be at most 500 characters".into()));
    }
    Ok(d.to_owned())
}

async fn load_role(tx: &mut Tx, identifier: &str) -> ApiResult<ProjectRoleRecord> {
    tx.project_role(identifier)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project role {identifier:?} does not exist")))
}

/// List the project roles.
#[utoipa::path(get, path = "/api/v1/project-roles", tag = "project-roles", security(("bearer" = [])),
    responses((status = 200, body = Page<ProjectRole>), (status = 401, body = Problem)))]
pub async fn list(State(app): State<AppState>, _caller: Caller) -> ApiResult<Json<Page<ProjectRole>>> {
    let mut tx = app.store.read().await?;
    let items = tx.list_project_roles().await?.into_iter().map(to_role).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// Create a project role (admins).
#[utoipa::path(post, path = "/api/v1/project-roles", tag = "project-roles", request_body = CreateProjectRole, security(("bearer" = [])),
    responses((status = 201, body = ProjectRole), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateProjectRole>,
) -> ApiResult<(StatusCode, Json<ProjectRole>)> {
    caller.require(Action::AdministerProjectRoles)?;
    validate! {
        identifier: "identifier" => RoleIdentifier::parse(&body.identifier),
        display_name: "display_name" => DisplayName::parse(&body.display_name),
        description: "description" => check_description(&body.description),
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    if tx.project_role(identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("identifier", format!("project role {identifier} already exists")));
    }
    let r = tx.insert_project_role(identifier.as_str(), display_name.as_str(), &description, now).await?;
    tx.append_event(
        None,
        EventKind::ProjectRoleCreated,
        now,
        &caller.initiator(),
        json!({"role": r.identifier, "display_name": r.display_name}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_role(r))))
}

/// Change a project role's name or description (admins).
#[utoipa::path(patch, path = "/api/v1/project-roles/{role}", tag = "project-roles", params(("role" = String, Path)), request_body = UpdateProjectRole,
    security(("bearer" = [])), responses((status = 200, body = ProjectRole), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
    ApiJson(body): ApiJson<UpdateProjectRole>,
) -> ApiResult<Json<ProjectRole>> {
    caller.require(Action::AdministerProjectRoles)?;
    validate! {
        display_name: "display_name" => body.display_name.as_deref().map(DisplayName::parse).transpose(),
        description: "description" => body.description.as_deref().map(check_description).transpose(),
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let before = load_role(&mut tx, &role).await?;
    let name = display_name.map_or_else(|| before.display_name.clone(), DisplayName::into_string);
    let description = description.unwrap_or_else(|| before.description.clone());
    tx.update_project_role(before.id, &name, &description).await?;
    tx.append_event(None, EventKind::ProjectRoleUpdated, now, &caller.initiator(),
        json!({"role": before.identifier, "old": {"display_name": before.display_name, "description": before.description},
               "new": {"display_name": name, "description": description}})).await?;
    let after = load_role(&mut tx, &role).await?;
    tx.commit().await?;
    Ok(Json(to_role(after)))
}

/// Delete a project role (admins); refused while bindings use it.
#[utoipa::path(delete, path = "/api/v1/project-roles/{role}", tag = "project-roles", params(("role" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(role): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerProjectRoles)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let r = load_role(&mut tx, &role).await?;
    let mapped = tx.count_role_mappings_with_role(r.id).await?;
    if mapped > 0 {
        return Err(ApiError::conflict(format!(
            "project role {} is mapped on {mapped} platform(s); change their role mappings first",
            r.identifier
        )));
    }
    let used = tx.count_bindings_with_role(r.id).await?;
    if used > 0 {
        return Err(ApiError::conflict(format!(
            "project role {} is used by {used} binding(s); change or remove them first",
            r.identifier
        )));
    }
    let waiting = tx.count_pending_requests_with_role(r.id).await?;
    if waiting > 0 {
        return Err(ApiError::conflict(format!(
            "project role {} is named by {waiting} pending request(s); decide them first",
            r.identifier
        )));
    }
    tx.delete_project_role(r.id).await?;
    tx.append_event(None, EventKind::ProjectRoleDeleted, now, &caller.initiator(), json!({"role": r.identifier}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
