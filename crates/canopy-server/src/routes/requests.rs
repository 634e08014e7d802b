//! Four-eye requests (FE1–FE4, AD2): pending changes to project bindings,
//! their approval and decline.
//!
//! A decision takes the request's lock first ([`Tx::lock_role_request`]) and
//! reads it again under it, so of many approvals arriving at once each is
//! counted once and only the one that completes the request applies it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use canopy_api_types::{DecideRequest, Page, Problem, RequestApproval, RoleRequest};
use canopy_domain::authz::{Action, ActorKind};
use canopy_domain::four_eye::{self, ApplyContext, Approver, Refusal, RequestKind, RequestState, Verdict};
use canopy_domain::history::EventKind;
use canopy_domain::mail::request_pending;
use canopy_domain::{Email, Subject, WorkspaceRole};
use canopy_store::{
    Decision, NewRoleRequest, PRIORITY_NORMAL, PersonRecord, Reach, RequestFilter, RoleRequestRecord, Tx,
    WorkspaceRecord,
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, KeyActor, key_actor, user_actor};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath as Path, ApiQuery, OptionalJson};
use crate::routes::bindings::{AddBinding, ChangeBy, apply_add, apply_change, apply_remove, subject_eligible};
use crate::routes::{check_limit, decode_cursor, load_workspace, page, rfc3339};

pub fn to_request(q: RoleRequestRecord, needs_admin: bool) -> RoleRequest {
    RoleRequest {
        id: q.id,
        subject: q.subject_string(),
        workspace: q.workspace,
        project: q.project,
        kind: q.kind.as_str().into(),
        state: q.state.as_str().into(),
        binding: q.binding_id,
        role: q.role,
        expires_at: q.expires_at,
        from_role: q.from_role,
        from_expires_at: q.from_expires_at,
        justification: q.justification,
        requested_by: q.requested_by,
        requested_at: q.requested_at,
        approvals_required: q.approvals_required,
        approvals: q
            .approvals
            .into_iter()
            .map(|a| RequestApproval { approver: a.approver, approved_at: a.approved_at })
            .collect(),
        needs_admin: needs_admin && q.state == RequestState::Pending,
        decided_by: q.decided_by,
        decided_at: q.decided_at,
        reason: q.reason,
    }
}

/// The people who may approve a request other than its requester, and
/// whether they are too few so that it waits for an admin (FE3).
async fn approvers(tx: &mut Tx, q: &RoleRequestRecord) -> ApiResult<(Vec<PersonRecord>, bool)> {
    // neither the requester nor anyone the change gives access to may approve it
    let beneficiaries = tx.people_reached(q.subject).await?;
    let managers: Vec<PersonRecord> = tx
        .workspace_managers(q.workspace_id)
        .await?
        .into_iter()
        .filter(|m| m.id != q.requested_by_id && !beneficiaries.contains(&m.id))
        .collect();
    let needs_admin = four_eye::needs_admin(q.approvals_required, managers.len());
    Ok((managers, needs_admin))
}

async fn mail_all(
    tx: &mut Tx,
    people: &[PersonRecord],
    make: impl Fn(&Email) -> canopy_domain::mail::Mail,
    now: OffsetDateTime,
) -> ApiResult<()> {
    for p in people {
        if let Ok(to) = Email::parse(&p.email) {
            tx.enqueue_mail(&make(&to), now).await?;
        }
    }
    Ok(())
}

/// Record a new request with its history event, and ask its approvers by
/// e-mail: the workspace's managers other than the requester, and the
/// admins too where the managers are fewer than the approvals it needs.
pub async fn open_request(
    tx: &mut Tx,
    caller: &Caller,
    new: NewRoleRequest<'_>,
    now: OffsetDateTime,
) -> ApiResult<RoleRequest> {
    // an API key asks on behalf of the person who made it: that person may
    // not approve it either (FE4), and hears the outcome
    let (requested_by_id, requested_by_key_id) = match caller.actor.kind {
        ActorKind::User => (caller.actor.id, None),
        _ => {
            let creator = tx.api_key(&caller.actor.id.to_string()).await?.and_then(|k| k.created_by_id);
            (creator.unwrap_or(caller.actor.id), Some(caller.actor.id))
        }
    };
    let new = NewRoleRequest { requested_by_id, requested_by_key_id, ..new };
    if let Some(other) = tx.similar_pending_request(&new).await? {
        return Err(ApiError::conflict(format!(
            "request {other} asks for this already and waits for approval; decide or withdraw it first"
        )));
    }
    let q = tx.insert_role_request(new, now).await?;
    let subject = q.subject_string();
    tx.append_event(
        Some(q.workspace_id),
        EventKind::RoleRequestCreated,
        now,
        &caller.initiator(),
        json!({"request": q.id, "kind": q.kind.as_str(), "project": q.project, "subject": subject,
               "role": q.role, "expires_at": rfc3339(q.expires_at), "binding": q.binding_id,
               "from": {"role": q.from_role, "expires_at": rfc3339(q.from_expires_at)},
               "justification": q.justification, "approvals_required": q.approvals_required}),
    )
    .await?;
    let (mut recipients, needs_admin) = approvers(tx, &q).await?;
    if needs_admin {
        for admin in tx.active_admins().await? {
            if admin.id != q.requested_by_id && !recipients.iter().any(|r| r.id == admin.id) {
                recipients.push(admin);
            }
        }
    }
    let id = q.id.to_string();
    let n = q.notice(&id, &subject);
    mail_all(tx, &recipients, |to| request_pending(to, &n, needs_admin), now).await?;
    Ok(to_request(q, needs_admin))
}

/// `?state=&limit=&cursor=` of a workspace's requests.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// `pending` (the default), `approved`, `declined`, `void` or `all`.
    pub state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// `?workspace=&state=&limit=&cursor=` of the admin area's requests.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminRequestQuery {
    /// Only this workspace's requests.
    pub workspace: Option<String>,
    /// `pending` (the default), `approved`, `declined`, `void` or `all`.
    pub state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn state_filter(state: Option<&str>) -> ApiResult<Option<RequestState>> {
    match state {
        None => Ok(Some(RequestState::Pending)),
        Some("all") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: canopy_domain::InvalidValue| ApiError::invalid("state", format!("{}, or all", e.0))),
    }
}

/// A page of requests, newest first, each saying whether it waits for an admin.
async fn list_page(
    tx: &mut Tx,
    filter: RequestFilter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Page<RoleRequest>> {
    let limit = check_limit(limit)?;
    let bad_cursor = || ApiError::invalid("cursor", "is not a cursor this API returned");
    let after = match decode_cursor(cursor)? {
        None => None,
        Some(c) => {
            let (t, id) = c.split_once('/').ok_or_else(bad_cursor)?;
            let t = t.parse::<i64>().ok().and_then(|t| canopy_store::from_us(t).ok()).ok_or_else(bad_cursor)?;
            Some((t, Uuid::parse_str(id).map_err(|_| bad_cursor())?))
        }
    };
    let rows = tx.role_requests(filter, after, i64::from(limit) + 1).await?;
    let mut managers: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    let mut shortfall = Vec::with_capacity(rows.len());
    for q in &rows {
        if q.state != RequestState::Pending {
            shortfall.push(false);
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = managers.entry(q.workspace_id) {
            e.insert(tx.workspace_managers(q.workspace_id).await?.into_iter().map(|m| m.id).collect());
        }
        let others = managers.get(&q.workspace_id).map_or(0, |m| m.iter().filter(|m| **m != q.requested_by_id).count());
        shortfall.push(four_eye::needs_admin(q.approvals_required, others));
    }
    let mut shortfall = shortfall.into_iter();
    Ok(page(
        rows,
        limit,
        |q| format!("{}/{}", canopy_store::to_us(q.requested_at), q.id),
        |q| to_request(q, shortfall.next().unwrap_or(false)),
    ))
}

/// A workspace's four-eye requests, pending ones by default (FE2).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/requests", tag = "requests",
    params(("ws" = String, Path), RequestQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<RoleRequest>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<Json<Page<RoleRequest>>> {
    let state = state_filter(q.state.as_deref())?;
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let filter = RequestFilter { workspace_id: Some(ws.id), state };
    Ok(Json(list_page(&mut tx, filter, q.limit, q.cursor.as_deref()).await?))
}

/// Every workspace's four-eye requests, pending ones by default (AD2).
#[utoipa::path(get, path = "/api/v1/admin/requests", tag = "admin", params(AdminRequestQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<RoleRequest>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn admin_list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AdminRequestQuery>,
) -> ApiResult<Json<Page<RoleRequest>>> {
    caller.require(Action::AdministerInstallation)?;
    let state = state_filter(q.state.as_deref())?;
    let mut tx = app.store.read().await?;
    let workspace_id = match &q.workspace {
        Some(w) => Some(load_workspace(&mut tx, w).await?.id),
        None => None,
    };
    let filter = RequestFilter { workspace_id, state };
    Ok(Json(list_page(&mut tx, filter, q.limit, q.cursor.as_deref()).await?))
}

async fn load_request(tx: &mut Tx, ws: &WorkspaceRecord, id: &str) -> ApiResult<RoleRequestRecord> {
    let not_found = || ApiError::not_found(format!("request {id:?} does not exist in workspace {}", ws.identifier));
    Uuid::parse_str(id).map_err(|_| not_found())?;
    let q = tx.role_request(id).await?.ok_or_else(not_found)?;
    if q.workspace_id != ws.id {
        return Err(not_found());
    }
    Ok(q)
}

/// One request of a workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/requests/{id}", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<RoleRequest>> {
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    let q = load_request(&mut tx, &ws, &id).await?;
    let needs_admin = approvers(&mut tx, &q).await?.1;
    Ok(Json(to_request(q, needs_admin)))
}

/// Load a request for a decision, under its lock, with the deciding person.
///
/// Only people decide: an API key may withdraw a request it made, nothing else.
async fn for_decision(
    tx: &mut Tx,
    caller: &Caller,
    ws: &str,
    id: &str,
) -> ApiResult<(WorkspaceRecord, RoleRequestRecord, Approver)> {
    let ws = load_workspace(tx, ws).await?;
    let role = caller.workspace_role(tx, &ws).await?;
    let person = caller.actor.is_user();
    let approver = Approver {
        id: caller.actor.id,
        is_admin: person && caller.actor.is_admin(),
        is_manager: person && role.is_some_and(|r| r >= WorkspaceRole::Manager),
    };
    let q = load_request(tx, &ws, id).await;
    // the API key that filed a request may withdraw it, whatever its scope
    let filed_it = q.as_ref().is_ok_and(|q| q.requested_by_key_id == Some(caller.actor.id));
    if !approver.is_admin && !approver.is_manager && role.is_none() && !filed_it {
        // outsiders learn nothing about the workspace's requests
        return Err(ApiError::Forbidden(format!(
            "only the managers of workspace {} and admins decide on its requests",
            ws.identifier
        )));
    }
    let q = q?;
    // the request first, then the workspace (member removals take it, so a
    // subject cannot leave between the check and the change), then the
    // project's tenants, and history last, as every writer does
    tx.lock_role_request(q.id).await?;
    tx.lock_workspace(ws.id).await?;
    tx.lock_project_tenants(q.project_id).await?;
    let mut q = load_request(tx, &ws, id).await?;
    // approvals count while their givers may still give them: a person since
    // demoted, removed or deactivated no longer counts
    let mut still = Vec::with_capacity(q.approvals.len());
    for a in std::mem::take(&mut q.approvals) {
        if may_approve(tx, &ws, a.approver_id).await? {
            still.push(a);
        }
    }
    q.approvals = still;
    Ok((ws, q, approver))
}

/// Whether a person may approve the workspace's requests now: an active
/// admin, or an active manager of it.
async fn may_approve(tx: &mut Tx, ws: &WorkspaceRecord, person: Uuid) -> ApiResult<bool> {
    let Some(user) = tx.user_by_id(person).await?.filter(|u| u.active) else { return Ok(false) };
    if user.installation_roles.contains(&canopy_domain::InstallationRole::Admin) {
        return Ok(true);
    }
    let role = WorkspaceRole::strongest(tx.membership_roles_of_user(ws.id, person).await?);
    Ok(role.is_some_and(|r| r >= WorkspaceRole::Manager))
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Lapsed => ApiError::conflict(r.to_string()),
        Refusal::OwnRequest | Refusal::OwnAccess | Refusal::NotAnApprover => ApiError::Forbidden(r.to_string()),
        Refusal::AlreadyApproved | Refusal::Decided(_) => ApiError::conflict(r.to_string()),
    }
}

fn reason(body: &DecideRequest) -> ApiResult<Option<String>> {
    let r = crate::routes::note_text("reason", body.reason.as_deref()).map_err(|e| ApiError::Invalid(vec![e]))?;
    Ok(r.map(str::to_owned))
}

/// Approve a request (FE2–FE4). It applies once it has its approvals from
/// managers other than the requester, or at once when an admin approves.
/// Nobody approves their own request (403); approving twice or a decided
/// request is a conflict (409). A request the world has moved past (its
/// binding removed, its expiration passed) ends `void` instead of applying.
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/requests/{id}/approve", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), request_body(content = Option<DecideRequest>), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<DecideRequest>,
) -> ApiResult<Json<RoleRequest>> {
    let now = app.clock.now();
    let reason = reason(&body)?;
    let mut tx = app.store.write().await?;
    if !caller.actor.is_user() {
        return Err(ApiError::Forbidden(
            "only people approve requests; sign in as a person rather than with an API key".into(),
        ));
    }
    let (ws, q, approver) = for_decision(&mut tx, &caller, &ws, &id).await?;
    let beneficiaries = tx.people_reached(q.subject).await?;
    let verdict = four_eye::approve(&q.rule(beneficiaries), approver).map_err(refused)?;
    if four_eye::lapsed(q.requested_at, now) {
        // the expiry job voids it and tells the requester
        return Err(refused(Refusal::Lapsed));
    }
    tx.add_approval(q.id, approver.id, &caller.actor.name, now).await?;
    if verdict == Verdict::Apply {
        // the bindings it touches, then the project's tenant work, before any
        // history chain: the order the expiry job and every binding change
        // take them in (a void request only costs the tenants a needless look)
        let touched = match q.kind {
            RequestKind::Add => tx.find_binding(q.project_id, q.subject, q.role_id).await?.map(|b| b.binding.id),
            RequestKind::Change | RequestKind::Remove => q.binding_id,
        };
        if let Some(b) = touched {
            tx.lock_binding(b).await?;
        }
        if let (RequestKind::Change, Some(other)) = (q.kind, tx.find_binding(q.project_id, q.subject, q.role_id).await?)
        {
            tx.lock_binding(other.binding.id).await?;
        }
        tx.mark_dirty(Reach::Project(q.project_id), PRIORITY_NORMAL).await?;
    }
    let subject = q.subject_string();
    let (approvals, required) = match verdict {
        Verdict::Wait { approvals, required } => (approvals, required),
        Verdict::Apply => {
            (u32::try_from(q.approvals.len()).unwrap_or(u32::MAX).saturating_add(1), q.approvals_required)
        }
    };
    tx.append_event(
        Some(ws.id),
        EventKind::RoleRequestApprovalGiven,
        now,
        &caller.initiator(),
        json!({"request": q.id, "project": q.project, "subject": subject, "role": q.role,
               "approvals": approvals, "approvals_required": required, "admin": approver.is_admin,
               "reason": reason}),
    )
    .await?;
    if verdict == Verdict::Apply {
        settle(&mut tx, &ws, &q, &caller, reason.as_deref(), now).await?;
    }
    let q = load_request(&mut tx, &ws, &id).await?;
    let needs_admin = approvers(&mut tx, &q).await?.1;
    tx.commit().await?;
    Ok(Json(to_request(q, needs_admin)))
}

/// The history event of a request closed as void for `reason`.
pub fn void_event(q: &RoleRequestRecord, reason: &str) -> serde_json::Value {
    json!({"request": q.id, "project": q.project, "subject": q.subject_string(), "role": q.role, "reason": reason})
}

/// Close as void, for `reason`, the pending requests that name `subject`
/// or that `requester` filed (the subject or requester is going), each with
/// its history event, and tell their requesters. Locks come in the order
/// every decision takes them: the requests, then their workspaces and
/// `also` (the workspaces the caller changes next) in ascending id, and only
/// then the history chains, ascending too.
pub async fn close_pending(
    tx: &mut Tx,
    subject: Subject,
    requester: Option<Uuid>,
    also: impl IntoIterator<Item = Uuid>,
    caller: &Caller,
    reason: &str,
    now: OffsetDateTime,
) -> ApiResult<()> {
    let mut requests = tx.pending_requests_touching(Some(subject), requester).await?;
    for q in &requests {
        tx.lock_role_request(q.id).await?;
    }
    let workspaces: std::collections::BTreeSet<Uuid> = requests.iter().map(|q| q.workspace_id).chain(also).collect();
    for ws in &workspaces {
        tx.lock_workspace(*ws).await?;
    }
    requests.sort_by_key(|q| (q.workspace_id, q.requested_at));
    for q in &requests {
        let decision =
            Decision { state: RequestState::Void, by: &caller.actor.name, reason: Some(reason), binding_id: None };
        if tx.decide_role_request(q.id, decision, now).await? {
            tx.append_event(
                Some(q.workspace_id),
                EventKind::RoleRequestVoid,
                now,
                &caller.initiator(),
                void_event(q, reason),
            )
            .await?;
            tell_requester(tx, q, RequestState::Void, &caller.actor.name, Some(reason), now).await?;
        }
    }
    Ok(())
}

/// Whether the person or API key that filed `q` may still make its change
/// in `ws` now (issue 11, finding 13): an account deactivated, removed from
/// the workspace or demoted, or a key deleted or expired, cannot.
async fn requester_may_ask(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    q: &RoleRequestRecord,
    now: OffsetDateTime,
) -> ApiResult<bool> {
    let actor = match q.requested_by_key_id {
        Some(key) => {
            let key = tx.api_key(&key.to_string()).await?.filter(|k| k.expires_at.is_none_or(|e| e > now));
            match key {
                Some(k) => match key_actor(tx, &k).await? {
                    KeyActor::Acts(a) => Some(a),
                    KeyActor::CreatorGone | KeyActor::Lost(_) => None,
                },
                None => None,
            }
        }
        None => user_actor(tx, q.requested_by_id).await?,
    };
    let Some(actor) = actor else { return Ok(false) };
    let requester = Caller { actor, session: None };
    Ok(requester.require_in(tx, ws, Action::ManageWorkspace).await.is_ok())
}

/// Apply an approved request, or void it where it can no longer apply; tell the requester.
async fn settle(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    q: &RoleRequestRecord,
    caller: &Caller,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult<()> {
    let project = tx
        .project_by_id(q.project_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the request's project vanished".into()))?;
    let binding = match q.kind {
        RequestKind::Add => tx.find_binding(project.id, q.subject, q.role_id).await?,
        RequestKind::Change | RequestKind::Remove => match q.binding_id {
            Some(b) => tx.binding(&b.to_string()).await?.filter(|b| b.binding.project_id == project.id),
            None => None,
        },
    };
    let other = match q.kind {
        RequestKind::Change => tx.find_binding(project.id, q.subject, q.role_id).await?,
        _ => None,
    };
    let ctx = ApplyContext {
        kind: q.kind,
        expires_at: q.expires_at,
        from: q.from_role_id.map(|r| (r, q.from_expires_at)),
        binding: binding.as_ref().map(|b| &b.binding),
        other: other.as_ref().map(|b| &b.binding),
        subject_eligible: subject_eligible(tx, ws, q.subject).await?,
        requester_may_ask: requester_may_ask(tx, ws, q, now).await?,
    };
    let subject = q.subject_string();
    let approved_by: Vec<&str> =
        q.approvals.iter().map(|a| a.approver.as_str()).chain([caller.actor.name.as_str()]).collect();
    let (state, made, why) = if let Some(void) = four_eye::void_reason(ctx, now) {
        let why = void.to_string();
        tx.append_event(Some(ws.id), EventKind::RoleRequestVoid, now, &caller.initiator(), void_event(q, &why)).await?;
        (RequestState::Void, None, Some(why))
    } else {
        tx.append_event(
            Some(ws.id),
            EventKind::RoleRequestApproved,
            now,
            &caller.initiator(),
            json!({"request": q.id, "kind": q.kind.as_str(), "project": q.project, "subject": subject, "role": q.role,
                   "approved_by": approved_by, "reason": reason}),
        )
        .await?;
        let by = ChangeBy { initiator: caller.initiator(), name: &caller.actor.name, request: Some(q.id) };
        // a change whose expiration passed ends the binding: its role stays (finding 16)
        let ends = four_eye::ends_access(q.kind, q.expires_at, now);
        let role_name = match (&binding, ends) {
            (Some(b), true) => b.role_identifier.clone(),
            _ => q.role.clone(),
        };
        let role = tx
            .project_role(&role_name)
            .await?
            .ok_or_else(|| ApiError::Internal("the request's role vanished".into()))?;
        let made = match (q.kind, &binding) {
            (RequestKind::Add, _) => {
                let add = AddBinding {
                    subject: q.subject,
                    name: &subject,
                    role: &role,
                    expires_at: q.expires_at,
                    justification: Some(&q.justification),
                    granted_by: &q.requested_by,
                };
                Some(apply_add(tx, ws, &project, add, &by, now).await?.binding.id)
            }
            (RequestKind::Change, Some(b)) => {
                apply_change(tx, ws, &project, b, &role, q.expires_at, &by, now).await?;
                None
            }
            (RequestKind::Remove, Some(b)) => {
                apply_remove(tx, ws, &project, b, &by, now).await?;
                None
            }
            (_, None) => return Err(ApiError::Internal("void_reason let a change without its binding through".into())),
        };
        (RequestState::Approved, made, reason.map(str::to_owned))
    };
    let decision = Decision { state, by: &caller.actor.name, reason: why.as_deref(), binding_id: made };
    if !tx.decide_role_request(q.id, decision, now).await? {
        return Err(ApiError::conflict("this request was decided meanwhile"));
    }
    tell_requester(tx, q, state, &caller.actor.name, why.as_deref(), now).await
}

/// E-mail the requester, when a person, the outcome of their request (FE2).
async fn tell_requester(
    tx: &mut Tx,
    q: &RoleRequestRecord,
    state: RequestState,
    by: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult<()> {
    tx.tell_requester(q, state, by, reason, now).await?;
    Ok(())
}

/// Decline a request, or withdraw one's own: it ends without effect (FE2).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/requests/{id}/decline", tag = "requests",
    params(("ws" = String, Path), ("id" = Uuid, Path)), request_body(content = Option<DecideRequest>), security(("bearer" = [])),
    responses((status = 200, body = RoleRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decline(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<DecideRequest>,
) -> ApiResult<Json<RoleRequest>> {
    let now = app.clock.now();
    let reason = reason(&body)?;
    let mut tx = app.store.write().await?;
    let (ws, q, who) = for_decision(&mut tx, &caller, &ws, &id).await?;
    let beneficiaries = tx.people_reached(q.subject).await?;
    let rule = q.rule(beneficiaries);
    four_eye::decline(&rule, who).map_err(refused)?;
    let withdrawn = four_eye::withdraws(&rule, who.id);
    let decision =
        Decision { state: RequestState::Declined, by: &caller.actor.name, reason: reason.as_deref(), binding_id: None };
    if !tx.decide_role_request(q.id, decision, now).await? {
        return Err(ApiError::conflict("this request was decided meanwhile"));
    }
    tx.append_event(
        Some(ws.id),
        EventKind::RoleRequestDeclined,
        now,
        &caller.initiator(),
        json!({"request": q.id, "project": q.project, "subject": q.subject_string(), "role": q.role,
               "withdrawn": withdrawn, "reason": reason}),
    )
    .await?;
    if !withdrawn {
        tell_requester(&mut tx, &q, RequestState::Declined, &caller.actor.name, reason.as_deref(), now).await?;
    }
    let q = load_request(&mut tx, &ws, &id).await?;
    tx.commit().await?;
    Ok(Json(to_request(q, false)))
}
