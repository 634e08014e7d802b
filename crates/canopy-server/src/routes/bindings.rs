//! Project bindings: who holds which project role, possibly until when (AC1–AC7).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canopy_api_types::{Binding, CreateBinding, FieldError, Page, Problem, RoleRequest, UpdateBinding};
use canopy_domain::access::check_binding_expiry;
use canopy_domain::authz::Action;
use canopy_domain::four_eye::RequestKind;
use canopy_domain::history::{EventKind, Initiator};
use canopy_domain::mail::{AccessChange, AccessNotice};
use canopy_domain::{Subject, SubjectKind};
use canopy_store::{BindingRecord, NewBinding, NewRoleRequest, ProjectRecord, ProjectRoleRecord, Tx, WorkspaceRecord};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::requests::open_request;
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

pub async fn load_binding(tx: &mut Tx, project: &ProjectRecord, id: &str) -> ApiResult<BindingRecord> {
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

/// The answer to a change of a binding: done at once, or a pending request
/// when the workspace needs four-eye approval (`202 Accepted`).
pub enum Outcome<T> {
    Done(StatusCode, T),
    Pending(Box<RoleRequest>),
}

impl<T: serde::Serialize> IntoResponse for Outcome<T> {
    fn into_response(self) -> Response {
        match self {
            Outcome::Done(StatusCode::NO_CONTENT, _) => StatusCode::NO_CONTENT.into_response(),
            Outcome::Done(status, body) => (status, Json(body)).into_response(),
            Outcome::Pending(request) => (StatusCode::ACCEPTED, Json(*request)).into_response(),
        }
    }
}

/// Who makes a change to a binding, and through which approved request.
pub struct ChangeBy<'a> {
    pub initiator: Initiator,
    pub name: &'a str,
    pub request: Option<Uuid>,
}

impl ChangeBy<'_> {
    /// History details, with the request that made the change where there is one.
    fn details(&self, mut details: serde_json::Value) -> serde_json::Value {
        if let (Some(r), Some(map)) = (self.request, details.as_object_mut()) {
            map.insert("request".into(), json!(r));
        }
        details
    }
}

/// A binding to make.
pub struct AddBinding<'a> {
    pub subject: Subject,
    /// `user:NAME` or `group:IDENTIFIER`.
    pub name: &'a str,
    pub role: &'a ProjectRoleRecord,
    pub expires_at: Option<OffsetDateTime>,
    pub justification: Option<&'a str>,
    /// Who asked for it (the requester, for an approved request).
    pub granted_by: &'a str,
}

/// A justification as given: trimmed, at most 1000 characters, `None` when blank.
pub fn justification(raw: Option<&str>) -> Result<Option<&str>, FieldError> {
    crate::routes::note_text("justification", raw)
}

/// Where the workspace needs four-eye approval, the justification a request
/// must carry; `None` where changes apply at once.
async fn needs_request<'a>(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    justification: Option<&'a str>,
) -> ApiResult<Option<(&'a str, u32)>> {
    let four_eye = tx.effective_four_eye(ws.id).await?;
    if !four_eye.enabled {
        return Ok(None);
    }
    match justification {
        Some(j) => Ok(Some((j, four_eye.approvals))),
        None => Err(ApiError::invalid(
            "justification",
            format!("is required: changes to bindings in workspace {} need approval", ws.identifier),
        )),
    }
}

/// What a pending request asks for (FE1).
struct Ask<'a> {
    kind: RequestKind,
    /// The binding it changes or removes.
    binding: Option<&'a canopy_domain::Binding>,
    subject: Subject,
    /// The subject's username or group identifier.
    subject_name: &'a str,
    role_id: Uuid,
    expires_at: Option<OffsetDateTime>,
}

/// Record a change as a pending request, commit, and answer `202` with it.
async fn pend<T>(
    mut tx: Tx,
    caller: &Caller,
    (ws, p): (&WorkspaceRecord, &ProjectRecord),
    ask: Ask<'_>,
    (justification, approvals): (&str, u32),
    now: OffsetDateTime,
) -> ApiResult<Outcome<T>> {
    // a change records what the binding was, so that it applies only to that
    let from = ask.binding.filter(|_| ask.kind == RequestKind::Change);
    let new = NewRoleRequest {
        workspace_id: ws.id,
        project_id: p.id,
        kind: ask.kind,
        binding_id: ask.binding.map(|b| b.id),
        subject: ask.subject,
        role_id: ask.role_id,
        expires_at: ask.expires_at,
        from_role_id: from.map(|b| b.role_id),
        from_expires_at: from.and_then(|b| b.expires_at),
        justification,
        approvals_required: approvals,
        requested_by_id: caller.actor.id,
        requested_by: &caller.actor.name,
        requested_by_key_id: None,
        subject_name: ask.subject_name,
    };
    let request = open_request(&mut tx, caller, new, now).await?;
    tx.commit().await?;
    Ok(Outcome::Pending(Box::new(request)))
}

/// Whether a subject may hold project roles in the workspace now: an active
/// user who is a member, or a group that is a member.
pub async fn subject_eligible(tx: &mut Tx, ws: &WorkspaceRecord, subject: Subject) -> ApiResult<bool> {
    Ok(match subject.kind {
        SubjectKind::User => {
            tx.user_by_id(subject.id).await?.is_some_and(|u| u.active)
                && !tx.membership_roles_of_user(ws.id, subject.id).await?.is_empty()
        }
        SubjectKind::Group => tx.member_role(ws.id, SubjectKind::Group, subject.id).await?.is_some(),
    })
}

/// Bind a user or a group to the project with a project role (AC1, AC2, AC7).
///
/// The subject must be a member of the workspace. A subject may hold several
/// roles; binding the same role twice is a conflict unless the earlier
/// binding has expired, which this one then replaces. Where the workspace
/// needs four-eye approval (FE1), the answer is `202` with the pending request.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path)), request_body = CreateBinding, security(("bearer" = [])),
    responses((status = 201, body = Binding), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project)): Path<(String, String)>,
    ApiJson(body): ApiJson<CreateBinding>,
) -> ApiResult<Outcome<Binding>> {
    let now = app.clock.now();
    let field = match (&body.user, &body.group) {
        (Some(_), None) => "user",
        (None, Some(_)) => "group",
        _ => return Err(ApiError::invalid("user", "give exactly one of user or group")),
    };
    let mut errors = Vec::new();
    let justification = justification(body.justification.as_deref()).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let mut tx = app.store.write().await?;
    let (ws, p) = managed_project(&mut tx, &caller, &ws, &project).await?;
    // a member removal takes the workspace too: the subject cannot leave
    // between the membership check below and the binding
    tx.lock_workspace(ws.id).await?;
    let maximum = tx.settings().await?.max_binding_duration();
    if let Err(err) = check_binding_expiry(body.expires_at, now, maximum) {
        errors.push(FieldError { field: "expires_at".into(), message: err.to_string() });
    }
    let role = tx.project_role(&body.role).await?;
    if role.is_none() {
        errors
            .push(FieldError { field: "role".into(), message: format!("project role {:?} does not exist", body.role) });
    }
    let subject = match (&body.user, &body.group) {
        (Some(username), _) => match tx.user_by_username(username).await? {
            None => {
                errors.push(FieldError { field: field.into(), message: format!("user {username:?} does not exist") });
                None
            }
            Some(u) if !u.active => {
                errors.push(FieldError {
                    field: field.into(),
                    message: format!("the account of {username} is deactivated"),
                });
                None
            }
            Some(u) if tx.membership_roles_of_user(ws.id, u.id).await?.is_empty() => {
                errors.push(FieldError {
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
                errors.push(FieldError { field: field.into(), message: format!("group {group:?} does not exist") });
                None
            }
            Some(g) if tx.member_role(ws.id, SubjectKind::Group, g.id).await?.is_none() => {
                errors.push(FieldError {
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
    let raw_name = name;
    let name = subject_string(subject.kind, &raw_name);
    if let Some((justification, approvals)) = needs_request(&mut tx, &ws, justification).await? {
        if let Some(existing) = tx.find_binding(p.id, subject, role.id).await?
            && existing.binding.in_force_at(now)
        {
            return Err(held(&name, &role, &p));
        }
        let ask = Ask {
            kind: RequestKind::Add,
            binding: None,
            subject,
            subject_name: &raw_name,
            role_id: role.id,
            expires_at: body.expires_at,
        };
        return pend(tx, &caller, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let add = AddBinding {
        subject,
        name: &name,
        role: &role,
        expires_at: body.expires_at,
        justification,
        granted_by: &caller.actor.name,
    };
    let by = ChangeBy { initiator: caller.initiator(), name: &caller.actor.name, request: None };
    let b = apply_add(&mut tx, &ws, &p, add, &by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(StatusCode::CREATED, to_binding(b, now)))
}

fn held(name: &str, role: &ProjectRoleRecord, p: &ProjectRecord) -> ApiError {
    ApiError::conflict_on("role", format!("{name} already holds {} on {}", role.identifier, p.identifier))
}

/// Make a binding, replacing an expired one of the same subject and role,
/// with its history event and e-mails.
pub async fn apply_add(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    p: &ProjectRecord,
    add: AddBinding<'_>,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> ApiResult<BindingRecord> {
    let AddBinding { subject, name, role, expires_at, justification, granted_by } = add;
    if let Some(existing) = tx.find_binding(p.id, subject, role.id).await? {
        if existing.binding.in_force_at(now) {
            return Err(held(name, role, p));
        }
        tx.delete_binding(existing.binding.id).await?;
        let details = by.details(json!({"binding": existing.binding.id, "project": p.identifier, "subject": name,
            "role": role.identifier, "reason": "expired binding replaced"}));
        tx.append_event(Some(ws.id), EventKind::BindingRemoved, now, &by.initiator, details).await?;
    }
    let new = NewBinding { project_id: p.id, subject, role_id: role.id, expires_at, justification, granted_by };
    let b = tx.insert_binding(new, now).await?;
    let details = by.details(json!({"binding": b.binding.id, "project": p.identifier, "subject": name,
        "role": role.identifier, "expires_at": rfc3339(expires_at), "justification": justification}));
    tx.append_event(Some(ws.id), EventKind::BindingCreated, now, &by.initiator, details).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), role.identifier.as_str());
    notify(tx, &b, AccessChange::Added, what, by.name, now).await?;
    Ok(b)
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

/// Change a binding's role or expiration date (AC5, AC7); `"expires_at": null`
/// removes the expiry. Where the workspace needs four-eye approval (FE1), the
/// answer is `202` with the pending request.
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path)), request_body = UpdateBinding, security(("bearer" = [])),
    responses((status = 200, body = Binding), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateBinding>,
) -> ApiResult<Outcome<Binding>> {
    let now = app.clock.now();
    let justification = justification(body.justification.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
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
    let expires_at = body.expires_at.unwrap_or(before.binding.expires_at);
    // a new expiration, or another role (a new grant), lies within the maximum
    let maximum = tx.settings().await?.max_binding_duration();
    if body.expires_at.is_some() || (role.id != before.binding.role_id && maximum.is_some()) {
        check_binding_expiry(expires_at, now, maximum)
            .map_err(|err| ApiError::invalid("expires_at", err.to_string()))?;
    }
    if let Some((justification, approvals)) = needs_request(&mut tx, &ws, justification).await? {
        if role.id == before.binding.role_id && expires_at == before.binding.expires_at {
            return Err(ApiError::invalid("role", "changes nothing: give another role or expires_at to request"));
        }
        if role.id != before.binding.role_id
            && let Some(other) = tx.find_binding(p.id, before.binding.subject, role.id).await?
            && other.binding.in_force_at(now)
        {
            let name = subject_string(before.binding.subject.kind, &before.subject_name);
            return Err(held(&name, &role, &p));
        }
        let b = &before.binding;
        let ask = Ask {
            kind: RequestKind::Change,
            binding: Some(b),
            subject: b.subject,
            subject_name: &before.subject_name,
            role_id: role.id,
            expires_at,
        };
        return pend(tx, &caller, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let by = ChangeBy { initiator: caller.initiator(), name: &caller.actor.name, request: None };
    let after = apply_change(&mut tx, &ws, &p, &before, &role, expires_at, &by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(StatusCode::OK, to_binding(after, now)))
}

/// Give a binding another role or expiration, with its history event and e-mails.
#[allow(clippy::too_many_arguments)]
pub async fn apply_change(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    p: &ProjectRecord,
    before: &BindingRecord,
    role: &ProjectRoleRecord,
    expires_at: Option<OffsetDateTime>,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> ApiResult<BindingRecord> {
    let name = subject_string(before.binding.subject.kind, &before.subject_name);
    if role.id != before.binding.role_id
        && let Some(other) = tx.find_binding(p.id, before.binding.subject, role.id).await?
    {
        if other.binding.in_force_at(now) {
            return Err(held(&name, role, p));
        }
        tx.delete_binding(other.binding.id).await?;
        let details = by.details(json!({"binding": other.binding.id, "project": p.identifier, "subject": name,
            "role": role.identifier, "reason": "expired binding replaced"}));
        tx.append_event(Some(ws.id), EventKind::BindingRemoved, now, &by.initiator, details).await?;
    }
    tx.update_binding(before.binding.id, role.id, expires_at).await?;
    let details = by.details(json!({"binding": before.binding.id, "project": p.identifier, "subject": name,
        "old": {"role": before.role_identifier, "expires_at": rfc3339(before.binding.expires_at)},
        "new": {"role": role.identifier, "expires_at": rfc3339(expires_at)}}));
    tx.append_event(Some(ws.id), EventKind::BindingChanged, now, &by.initiator, details).await?;
    let after = load_binding(tx, p, &before.binding.id.to_string()).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), role.identifier.as_str());
    notify(tx, &after, AccessChange::Changed, what, by.name, now).await?;
    Ok(after)
}

/// `?justification=` of a binding's removal, required where it needs approval.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    pub justification: Option<String>,
}

/// Remove a binding (AC6). Binding the subject again later restores the
/// access. Where the workspace needs four-eye approval (FE1), the answer is
/// `202` with the pending request.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/projects/{project}/bindings/{id}", tag = "bindings",
    params(("ws" = String, Path), ("project" = String, Path), ("id" = Uuid, Path), RemoveQuery), security(("bearer" = [])),
    responses((status = 204), (status = 202, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, project, id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> ApiResult<Outcome<()>> {
    let now = app.clock.now();
    let justification = justification(q.justification.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    let mut tx = app.store.write().await?;
    let (ws, p) = managed_project(&mut tx, &caller, &ws, &project).await?;
    let b = load_binding(&mut tx, &p, &id).await?;
    if let Some((justification, approvals)) = needs_request(&mut tx, &ws, justification).await? {
        let subject_name = b.subject_name.clone();
        let b = &b.binding;
        let ask = Ask {
            kind: RequestKind::Remove,
            binding: Some(b),
            subject: b.subject,
            subject_name: &subject_name,
            role_id: b.role_id,
            expires_at: b.expires_at,
        };
        return pend(tx, &caller, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let by = ChangeBy { initiator: caller.initiator(), name: &caller.actor.name, request: None };
    apply_remove(&mut tx, &ws, &p, &b, &by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(StatusCode::NO_CONTENT, ()))
}

/// Remove a binding, with its history event and e-mails.
pub async fn apply_remove(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    p: &ProjectRecord,
    b: &BindingRecord,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> ApiResult<()> {
    tx.delete_binding(b.binding.id).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), b.role_identifier.as_str());
    notify(tx, b, AccessChange::Removed, what, by.name, now).await?;
    let details = by.details(json!({"binding": b.binding.id, "project": p.identifier,
        "subject": subject_string(b.binding.subject.kind, &b.subject_name),
        "role": b.role_identifier, "expires_at": rfc3339(b.binding.expires_at)}));
    tx.append_event(Some(ws.id), EventKind::BindingRemoved, now, &by.initiator, details).await?;
    Ok(())
}
