//! Project bindings: who holds which project role, possibly until when (AC1–AC7).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{Binding, CreateBinding, Page, Problem, UpdateBinding};
use canopy_domain::access::check_new_expiry;
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::mail::{AccessChange, AccessNotice};
use canopy_domain::{Subject, SubjectKind};
use canopy_store::{BindingRecord, NewBinding, ProjectRecord, Tx, WorkspaceRecord};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, load_project, load_workspace, page, rfc3339, subject_string};

pub fn to_binding(b: BindingRecord, now: OffsetDateTime) -> Binding {
    Binding {
        id: b.binding.id,
        subject: subject_string(b.binding.subject.kind, &b.subject_name),
        kind: b.binding.subject.kind.as_str().into(),
        in_force: b.binding.in_force_at(now),
        name: b.subject_name,
        display_name: b.subject_display_name,
        role: b.role_identifier,
        expires_at: b.binding.expires_at,
        justification: b.justification,
        granted_by: b.granted_by,
        granted_at: b.granted_at,
    }
}

async fn load_binding(tx: &mut Tx, project: &ProjectRecord, id: &str) -> ApiResult<BindingRecord> {
    let not_found = || ApiError::not_found(format!("binding {id:?} does not exist on project {}", project.identifier));
    Uuid::parse_str(id).map_err(|_| not_found())?;
    let b = tx.binding(id).await?.ok_or_else(not_found)?;
    if b.binding.project_id != project.id {
        return Err(not_found());
    }
    Ok(b)
}

/// Resolve and load what a manager's request names: workspace and project,
/// refusing callers who may not manage the workspace (WS7, AD1).
async fn managed_project(
    tx: &mut Tx,
    caller: &Caller,
    ws: &str,
    project: &str,
) -> ApiResult<(WorkspaceRecord, ProjectRecord)> {
    let ws = load_workspace(tx, ws).await?;
    caller.require_in(tx, &ws, Action::ManageWorkspace).await?;
    let p = load_project(tx, &ws, project).await?;
    Ok((ws, p))
}

/// List a project's bindings.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Binding>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Binding>>> {
    let limit = q.limit()?;
    let cursor = q.cursor()?;
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewWorkspace).await?;
    let p = load_project(&mut tx, &ws, &project).await?;
    let mut rows = tx.project_bindings(p.id).await?;
    rows.sort_by_key(|b| b.binding.id);
    let rows: Vec<_> =
        rows.into_iter().filter(|b| cursor.as_deref().is_none_or(|c| b.binding.id.to_string().as_str() > c)).collect();
    Ok(Json(page(rows, limit, |b| b.binding.id.to_string(), |b| to_binding(b, now))))
}

/// Bind a user or a group to the project with a project role (AC1, AC2, AC7).
///
/// The subject must be a member of the workspace. A subject may hold several
/// roles; binding the same role twice is a conflict unless the earlier
/// binding has expired, which this one then replaces.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path)), request_body = CreateBinding, security(("bearer" = [])),
    responses((status = 201, body = Binding), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateBinding>,
) -> ApiResult<(StatusCode, Json<Binding>)> {
    let now = app.clock.now();
    let field = match (&body.user, &body.group) {
        (Some(_), None) => "user",
        (None, Some(_)) => "group",
        _ => return Err(ApiError::invalid("user", "give exactly one of user or group")),
    };
    let mut errors = Vec::new();
    if let Some(e) = body.expires_at
        && let Err(err) = check_new_expiry(e, now)
    {
        errors.push(canopy_api_types::FieldError { field: "expires_at".into(), message: err.to_string() });
    }
    let justification = body.justification.as_deref().map(str::trim).filter(|j| !j.is_empty());
    if justification.is_some_and(|j| j.chars().count() > 1000) {
        errors.push(canopy_api_types::FieldError {
            field: "justification".into(),
            message: "must be at most 1000 characters".into(),
        });
    }
    let mut tx = app.store.write().await?;
    let (ws, p) = managed_project(&mut tx, &caller, &ws, &project).await?;
    let role = tx.project_role(&body.role).await?;
    if role.is_none() {
        errors.push(canopy_api_types::FieldError {
            field: "role".into(),
            message: format!("project role {:?} does not exist", body.role),
        });
    }
    let subject = match (&body.user, &body.group) {
        (Some(username), _) => match tx.user_by_username(username).await? {
            None => {
                errors.push(canopy_api_types::FieldError {
                    field: field.into(),
                    message: format!("user {username:?} does not exist"),
                });
                None
            }
            Some(u) if !u.active => {
                errors.push(canopy_api_types::FieldError {
                    field: field.into(),
                    message: format!("the account of {username} is deactivated"),
                });
                None
            }
            Some(u) if tx.membership_roles_of_user(ws.id, u.id).await?.is_empty() => {
                errors.push(canopy_api_types::FieldError {
                    field: field.into(),
                    message: format!(
                        "{username} is not a member of workspace {}; invite them to the workspace first",
                        ws.identifier
                    ),
                });
                None
            }
            Some(u) => Some((Subject::user(u.id), u.username)),
        },
        (_, Some(group)) => match tx.group_by_identifier(group).await? {
            None => {
                errors.push(canopy_api_types::FieldError {
                    field: field.into(),
                    message: format!("group {group:?} does not exist"),
                });
                None
            }
            Some(g) if tx.member_role(ws.id, SubjectKind::Group, g.id).await?.is_none() => {
                errors.push(canopy_api_types::FieldError {
                    field: field.into(),
                    message: format!(
                        "group {group} is not a member of workspace {}; invite it to the workspace first",
                        ws.identifier
                    ),
                });
                None
            }
            Some(g) => Some((Subject::group(g.id), g.identifier)),
        },
        _ => None,
    };
    let (Some(role), Some((subject, name)), true) = (role, subject, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let name = subject_string(subject.kind, &name);
    let initiator = caller.initiator();
    if let Some(existing) = tx.find_binding(p.id, subject, role.id).await? {
        if existing.binding.in_force_at(now) {
            return Err(ApiError::conflict_on(
                "role",
                format!("{name} already holds {} on {}", role.identifier, p.identifier),
            ));
        }
        tx.delete_binding(existing.binding.id).await?;
        tx.append_event(
            Some(ws.id),
            EventKind::BindingRemoved,
            now,
            &initiator,
            json!({"binding": existing.binding.id, "project": p.identifier, "subject": name, "role": role.identifier,
                   "reason": "expired binding replaced"}),
        )
        .await?;
    }
    let new = NewBinding {
        project_id: p.id,
        subject,
        role_id: role.id,
        expires_at: body.expires_at,
        justification,
        granted_by: &caller.actor.name,
    };
    let b = tx.insert_binding(new, now).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::BindingCreated,
        now,
        &initiator,
        json!({"binding": b.binding.id, "project": p.identifier, "subject": name, "role": role.identifier,
               "expires_at": rfc3339(body.expires_at), "justification": justification}),
    )
    .await?;
    notify(
        &mut tx,
        &b,
        AccessChange::Added,
        (&ws.identifier, &p.identifier, &role.identifier),
        &caller.actor.name,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_binding(b, now))))
}

/// E-mail the people a binding's change affects (AC11).
pub async fn notify(
    tx: &mut canopy_store::Tx,
    b: &BindingRecord,
    change: AccessChange,
    (workspace, project, role): (&str, &str, &str),
    by: &str,
    now: time::OffsetDateTime,
) -> ApiResult<()> {
    let notice = AccessNotice { role, ..b.notice(change, workspace, project, by) };
    tx.notify_access(b.binding.subject, &notice, now).await?;
    Ok(())
}

/// Change a binding's role or expiration date (AC5, AC7); `"expires_at": null` removes the expiry.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path)), request_body = UpdateBinding, security(("bearer" = [])),
    responses((status = 200, body = Binding), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateBinding>,
) -> ApiResult<Json<Binding>> {
    let now = app.clock.now();
    if let Some(Some(e)) = body.expires_at {
        check_new_expiry(e, now).map_err(|err| ApiError::invalid("expires_at", err.to_string()))?;
    }
    let mut tx = app.store.write().await?;
    let (ws, p) = managed_project(&mut tx, &caller, &ws, &project).await?;
    let before = load_binding(&mut tx, &p, &id).await?;
    let role = match &body.role {
        Some(r) => tx
            .project_role(r)
            .await?
            .ok_or_else(|| ApiError::invalid("role", format!("project role {r:?} does not exist")))?,
        None => tx
            .project_role(&before.role_identifier)
            .await?
            .ok_or_else(|| ApiError::Internal("binding's role vanished".into()))?,
    };
    let name = subject_string(before.binding.subject.kind, &before.subject_name);
    if role.id != before.binding.role_id
        && let Some(other) = tx.find_binding(p.id, before.binding.subject, role.id).await?
    {
        if other.binding.in_force_at(now) {
            return Err(ApiError::conflict_on(
                "role",
                format!("{name} already holds {} on {}", role.identifier, p.identifier),
            ));
        }
        tx.delete_binding(other.binding.id).await?;
        let details = json!({"binding": other.binding.id, "project": p.identifier, "subject": name,
            "role": role.identifier, "reason": "expired binding replaced"});
        tx.append_event(Some(ws.id), EventKind::BindingRemoved, now, &caller.initiator(), details).await?;
    }
    let expires_at = body.expires_at.unwrap_or(before.binding.expires_at);
    tx.update_binding(before.binding.id, role.id, expires_at).await?;
    tx.append_event(
        Some(ws.id),
        EventKind::BindingChanged,
        now,
        &caller.initiator(),
        json!({"binding": before.binding.id, "project": p.identifier, "subject": name,
               "old": {"role": before.role_identifier, "expires_at": rfc3339(before.binding.expires_at)},
               "new": {"role": role.identifier, "expires_at": rfc3339(expires_at)}}),
    )
    .await?;
    let after = load_binding(&mut tx, &p, &id).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), role.identifier.as_str());
    notify(&mut tx, &after, AccessChange::Changed, what, &caller.actor.name, now).await?;
    tx.commit().await?;
    Ok(Json(to_binding(after, now)))
}

/// Remove a binding (AC6). Binding the subject again later restores the access.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let (ws, p) = managed_project(&mut tx, &caller, &ws, &project).await?;
    let b = load_binding(&mut tx, &p, &id).await?;
    tx.delete_binding(b.binding.id).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), b.role_identifier.as_str());
    notify(&mut tx, &b, AccessChange::Removed, what, &caller.actor.name, now).await?;
    tx.append_event(Some(ws.id), EventKind::BindingRemoved, now, &caller.initiator(),
        json!({"binding": b.binding.id, "project": p.identifier, "subject": subject_string(b.binding.subject.kind, &b.subject_name),
               "role": b.role_identifier, "expires_at": rfc3339(b.binding.expires_at)})).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
