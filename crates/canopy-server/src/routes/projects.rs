//! Projects of a workspace (PR1, PR2).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateProject, EffectiveAccess, Page, Problem, Project, ProjectDetails, UpdateProject};
use canopy_app::projects::{self as uc, NewProjectInput, ProjectChange};
use canopy_store::ProjectRecord;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::{to_binding, to_tenant};
use crate::routes::{ListQuery, to_page};

pub fn to_project(p: ProjectRecord, workspace: &str) -> Project {
    Project {
        workspace: workspace.to_owned(),
        identifier: p.identifier,
        display_name: p.display_name,
        payment_method: p.payment_method_id.map(|id| id.to_string()),
        substitute_payment_method: p.substitute_payment_method_id.map(|id| id.to_string()),
        tags: p.tags.into_iter().collect(),
        created_at: p.created_at,
    }
}

/// List a workspace's projects.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects", tag = "projects", params(("ws" = String, Path), ListQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Project>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Project>>> {
    let paging = q.paging()?;
    let (ws, rows) = uc::list(&app.store, &caller, &ws, &paging).await?;
    Ok(Json(to_page(rows, |p| to_project(p, &ws.identifier))))
}

/// Create a project (managers).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects", tag = "projects", params(("ws" = String, Path)), request_body = CreateProject,
    security(("bearer" = [])),
    responses((status = 201, body = Project), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let input = NewProjectInput {
        identifier: body.identifier,
        display_name: body.display_name,
        tags: body.tags,
        payment_method: body.payment_method,
        substitute_payment_method: body.substitute_payment_method,
    };
    let (ws, p) = uc::create(&app.store, &caller, app.clock.now(), &ws, input).await?;
    Ok((StatusCode::CREATED, Json(to_project(p, &ws.identifier))))
}

/// A project's page: the project, its bindings, and who effectively has access now (PR2).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}", tag = "projects", params(("ws" = String, Path), ("project" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = ProjectDetails), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
) -> ApiResult<Json<ProjectDetails>> {
    let now = app.clock.now();
    let d = uc::show(&app.store, &caller, now, (&ws, &project)).await?;
    let (ws, p) = (&d.workspace.identifier, &d.project.identifier);
    Ok(Json(ProjectDetails {
        tenants: d.tenants.into_iter().map(|t| to_tenant(t, ws, p)).collect(),
        bindings: d.bindings.into_iter().map(|b| to_binding(b, now)).collect(),
        effective_access: d
            .effective_access
            .into_iter()
            .map(|(username, roles)| EffectiveAccess { username, roles })
            .collect(),
        project: to_project(d.project, ws),
    }))
}

/// Change a project's display name or tags (managers; admin-only tags: admins).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/projects/{project}", tag = "projects", params(("ws" = String, Path), ("project" = String, Path)),
    request_body = UpdateProject, security(("bearer" = [])),
    responses((status = 200, body = Project), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<Json<Project>> {
    let change = ProjectChange {
        display_name: body.display_name,
        tags: body.tags,
        payment_method: body.payment_method,
        substitute_payment_method: body.substitute_payment_method,
    };
    let (ws, p) = uc::update(&app.store, &caller, app.clock.now(), (&ws, &project), change).await?;
    Ok(Json(to_project(p, &ws.identifier)))
}

/// Delete a project (managers, DL1). Without tenants it goes at once (204);
/// with tenants its deletion is requested (202): confirm it by typing the
/// project identifier (`POST .../deletion/confirm`), and it goes when every
/// tenant deletion succeeded.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{project}", tag = "projects", params(("ws" = String, Path), ("project" = String, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 202, body = canopy_api_types::ProjectDeletion),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 502, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
) -> ApiResult<axum::response::Response> {
    let now = app.clock.now();
    let outcome =
        canopy_app::deletion::request(&app.store, &*app.platforms, &caller, now, (&ws, &project, None)).await?;
    Ok(crate::mapping::deletion_requested(outcome))
}
