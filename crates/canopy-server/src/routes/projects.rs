//! Projects of a workspace (PR1, PR2).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{CreateProject, EffectiveAccess, Page, Problem, Project, ProjectDetails, UpdateProject};
use canopy_domain::access::{UserStatus, effective_project_roles};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::tags::apply_tags;
use canopy_domain::{DisplayName, Identifier, SubjectKind};
use canopy_store::{ProjectRecord, Tx};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::mapping::{to_binding, to_tenant};
use crate::routes::{ListQuery, load_project, load_workspace, page};
use crate::validate;

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

/// A project's payment method and substitute (PM2): both the workspace's,
/// a substitute only with a method, and not the method itself.
async fn payment(
    tx: &mut Tx,
    ws: &canopy_store::WorkspaceRecord,
    method: Option<Uuid>,
    substitute: Option<Uuid>,
) -> ApiResult<(Option<Uuid>, Option<Uuid>)> {
    for (field, id) in [("payment_method", method), ("substitute_payment_method", substitute)] {
        if let Some(id) = id
            && tx.payment_method(id).await?.is_none_or(|m| m.workspace_id != ws.id)
        {
            return Err(ApiError::invalid(field, format!("is not a payment method of workspace {}", ws.identifier)));
        }
    }
    match (method, substitute) {
        (None, Some(_)) => Err(ApiError::invalid("substitute_payment_method", "needs a payment_method to replace")),
        (Some(m), Some(s)) if m == s => {
            Err(ApiError::invalid("substitute_payment_method", "must differ from the payment method"))
        }
        pair => Ok(pair),
    }
}

/// Refuse to set a substitute where the installation switched them off (PM2).
async fn substitutes_allowed(tx: &mut Tx, setting_one: bool) -> ApiResult<()> {
    if setting_one && !tx.settings().await?.payment_substitutes {
        return Err(ApiError::invalid(
            "substitute_payment_method",
            "this installation does not use substitute payment methods (an admin can enable them in the settings)",
        ));
    }
    Ok(())
}

/// Tag problems as a 422 naming each `tags.KEY`.
fn tag_problems(list: Vec<(String, String)>) -> ApiError {
    ApiError::Invalid(
        list.into_iter().map(|(field, message)| canopy_api_types::FieldError { field, message }).collect(),
    )
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
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    validate! {
        identifier: "identifier" => Identifier::parse(&body.identifier),
        display_name: "display_name" => DisplayName::parse(&body.display_name),
    }
    if tx.project(ws.id, identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on(
            "identifier",
            format!("project {identifier} already exists in {}", ws.identifier),
        ));
    }
    let defs = tx.tag_definitions().await?;
    let admin = caller.require(Action::AdministerInstallation).is_ok();
    let tags = apply_tags(&defs, &body.tags, &Default::default(), true, admin).map_err(tag_problems)?;
    substitutes_allowed(&mut tx, body.substitute_payment_method.is_some()).await?;
    let (method, substitute) = payment(&mut tx, &ws, body.payment_method, body.substitute_payment_method).await?;
    let mut p = tx.insert_project(ws.id, identifier.as_str(), display_name.as_str(), now).await?;
    tx.set_project_tags(p.id, &tags).await?;
    p.tags = tags;
    if method.is_some() {
        tx.set_project_payment(p.id, method, substitute).await?;
        (p.payment_method_id, p.substitute_payment_method_id) = (method, substitute);
    }
    tx.append_event(
        Some(ws.id),
        EventKind::ProjectCreated,
        now,
        &caller.initiator(),
        json!({"project": p.identifier, "display_name": p.display_name, "tags": p.tags}),
    )
    .await?;
    tx.commit().await?;
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
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let mut p = load_project(&mut tx, &ws, &project).await?;
    validate! { display_name: "display_name" => body.display_name.as_deref().map(DisplayName::parse).transpose() }
    if let Some(name) = display_name {
        tx.rename_project(p.id, name.as_str()).await?;
        tx.append_event(Some(ws.id), EventKind::ProjectUpdated, now, &caller.initiator(),
            json!({"project": p.identifier, "old": {"display_name": p.display_name}, "new": {"display_name": name.as_str()}})).await?;
        p.display_name = name.into_string();
    }
    if body.payment_method.is_some() || body.substitute_payment_method.is_some() {
        substitutes_allowed(&mut tx, matches!(body.substitute_payment_method, Some(Some(_)))).await?;
        let method = body.payment_method.unwrap_or(p.payment_method_id);
        // removing the method removes its substitute
        let substitute = match (method, body.substitute_payment_method) {
            (None, _) => None,
            (_, Some(s)) => s,
            (_, None) => p.substitute_payment_method_id,
        };
        let (method, substitute) = payment(&mut tx, &ws, method, substitute).await?;
        if (method, substitute) != (p.payment_method_id, p.substitute_payment_method_id) {
            tx.set_project_payment(p.id, method, substitute).await?;
            tx.append_event(Some(ws.id), EventKind::ProjectUpdated, now, &caller.initiator(),
                json!({"project": p.identifier,
                       "old": {"payment_method": p.payment_method_id, "substitute_payment_method": p.substitute_payment_method_id},
                       "new": {"payment_method": method, "substitute_payment_method": substitute}})).await?;
            (p.payment_method_id, p.substitute_payment_method_id) = (method, substitute);
        }
    }
    if let Some(given) = &body.tags {
        // the tags as they are now, with the row locked until commit
        tx.lock_project(p.id).await?;
        p.tags = tx.project_by_id(p.id).await?.map(|q| q.tags).unwrap_or_default();
        let defs = tx.tag_definitions().await?;
        let admin = caller.require(Action::AdministerInstallation).is_ok();
        let tags = apply_tags(&defs, given, &p.tags, false, admin).map_err(tag_problems)?;
        if tags != p.tags {
            tx.set_project_tags(p.id, &tags).await?;
            tx.append_event(
                Some(ws.id),
                EventKind::ProjectUpdated,
                now,
                &caller.initiator(),
                json!({"project": p.identifier, "old": {"tags": p.tags}, "new": {"tags": tags}}),
            )
            .await?;
            p.tags = tags;
        }
    }
    tx.commit().await?;
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
