//! Project roles, configured by admins (AC4); changes are use cases of
//! [`canopy_app::project_roles`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateProjectRole, Page, Problem, ProjectRole, UpdateProjectRole};
use canopy_app::project_roles::{self as uc, NewProjectRole, ProjectRoleChange};
use canopy_store::ProjectRoleRecord;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path};

fn to_role(r: ProjectRoleRecord) -> ProjectRole {
    ProjectRole { identifier: r.identifier, display_name: r.display_name, description: r.description }
}

/// List the project roles.
#[utoipa::path(get, path = "/api/v1/project-roles", tag = "project-roles", security(("bearer" = [])),
    responses((status = 200, body = Page<ProjectRole>), (status = 401, body = Problem)))]
pub async fn list(State(app): State<AppState>, _caller: Caller) -> ApiResult<Json<Page<ProjectRole>>> {
    let items = uc::list(&app.store).await?.into_iter().map(to_role).collect();
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
    let input =
        NewProjectRole { identifier: body.identifier, display_name: body.display_name, description: body.description };
    let r = uc::create(&app.store, &caller, app.clock.now(), input).await?;
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
    let change = ProjectRoleChange { display_name: body.display_name, description: body.description };
    Ok(Json(to_role(uc::update(&app.store, &caller, app.clock.now(), &role, change).await?)))
}

/// Delete a project role (admins); refused while bindings use it.
#[utoipa::path(delete, path = "/api/v1/project-roles/{role}", tag = "project-roles", params(("role" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(State(app): State<AppState>, caller: Caller, Path(role): Path<String>) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &role).await?;
    Ok(StatusCode::NO_CONTENT)
}
