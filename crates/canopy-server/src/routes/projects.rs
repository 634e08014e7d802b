//! Projects of a workspace (PR1, PR2).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateProject, EffectiveAccess, Page, Problem, Project, ProjectDetails, UpdateProject};
use canopy_app::projects::{self as uc, NewProjectInput, ProjectChange};
use canopy_domain::SubjectKind;
use canopy_domain::access::{UserStatus, effective_project_roles};
use canopy_domain::authz::Action;
use canopy_store::{ProjectRecord, Tx};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::{to_binding, to_tenant};
use crate::routes::{ListQuery, load_project, load_workspace, page};

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
    let limit = q.limit()?;
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let rows = tx.list_projects(ws.id, q.cursor()?.as_deref(), limit).await?;
    Ok(Json(page(rows, limit, |p| p.identifier.clone(), |p| to_project(p, &ws.identifier))))
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

/// Who effectively holds which roles on a project at `now`: bound users and
/// the current members of bound groups, active accounts only (AC3, AC10).
async fn effective_access(
    tx: &mut Tx,
    bindings: &[canopy_store::BindingRecord],
    now: OffsetDateTime,
) -> ApiResult<Vec<EffectiveAccess>> {
    let groups: BTreeSet<_> = bindings
        .iter()
        .filter(|b| b.binding.subject.kind == SubjectKind::Group)
        .map(|b| b.binding.subject.id)
        .collect();
    let memberships = tx.group_memberships(&groups).await?;
    let mut user_ids: BTreeSet<_> = memberships.values().flatten().copied().collect();
    user_ids
        .extend(bindings.iter().filter(|b| b.binding.subject.kind == SubjectKind::User).map(|b| b.binding.subject.id));
    let mut users = Vec::new();
    let mut names = BTreeMap::new();
    for id in user_ids {
        if let Some(u) = tx.user_by_id(id).await? {
            users.push(UserStatus { id, active: u.active });
            names.insert(id, u.username);
        }
    }
    let role_names: BTreeMap<_, _> = bindings.iter().map(|b| (b.binding.role_id, b.role_identifier.clone())).collect();
    let plain: Vec<_> = bindings.iter().map(|b| b.binding.clone()).collect();
    let mut out: Vec<EffectiveAccess> = effective_project_roles(&plain, &memberships, &users, now)
        .into_iter()
        .filter_map(|(user, roles)| {
            Some(EffectiveAccess {
                username: names.get(&user)?.clone(),
                roles: roles.iter().filter_map(|r| role_names.get(r).cloned()).collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(out)
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
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let p = load_project(&mut tx, &ws, &project).await?;
    let records = tx.project_bindings(p.id).await?;
    let effective_access = effective_access(&mut tx, &records, now).await?;
    let tenants =
        tx.project_tenants(p.id).await?.into_iter().map(|t| to_tenant(t, &ws.identifier, &p.identifier)).collect();
    Ok(Json(ProjectDetails {
        project: to_project(p, &ws.identifier),
        bindings: records.into_iter().map(|b| to_binding(b, now)).collect(),
        effective_access,
        tenants,
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
