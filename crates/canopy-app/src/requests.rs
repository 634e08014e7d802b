//! Four-eye requests (FE1–FE4, AD2): pending changes to project bindings,
//! their approval, decline and withdrawal, and how they settle.
//!
//! A decision takes the request's lock first ([`Tx::lock_role_request`]) and
//! reads it again under it, so of many approvals arriving at once each is
//! counted once and only the one that completes the request applies it.

use canopy_domain::authz::{self, Action, ActorKind, authorize};
use canopy_domain::events::{
    RequestedFrom, RoleRequestApprovalGiven, RoleRequestApproved, RoleRequestCreated, RoleRequestDeclined,
    RoleRequestVoid,
};
use canopy_domain::four_eye::{self, ApplyContext, Approver, Refusal, RequestKind, RequestState, Verdict, VoidReason};
use canopy_domain::history::Initiator;
use canopy_domain::mail::request_pending;
use canopy_domain::{Email, Subject};
use canopy_store::{
    Decision, NewRoleRequest, PRIORITY_NORMAL, PersonRecord, Reach, RequestFilter, RoleRequestRecord, Store, Tx,
    WorkspaceRecord, from_us, to_us,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::bindings::{AddBinding, ChangeBy, apply_add, apply_change, apply_remove, subject_eligible};
use crate::error::{Error, Result};
use crate::load::{self, note_text};
use crate::paging::{Page, Paging, page};
use crate::principal::{KeyActor, Principal, key_actor, user_actor};

/// A request as its readers see it: the record, and whether it waits for an
/// admin because the workspace has too few other managers to approve it (FE3).
#[derive(Debug, Clone)]
pub struct RequestView {
    pub request: RoleRequestRecord,
    pub needs_admin: bool,
}

impl RequestView {
    async fn of(tx: &mut Tx, request: RoleRequestRecord) -> Result<Self> {
        let needs_admin = request.state == RequestState::Pending && approvers(tx, &request).await?.1;
        Ok(Self { request, needs_admin })
    }
}

/// Which requests a list shows: `pending` (the default), `approved`,
/// `declined`, `void`, or `all` (`None`).
pub fn parse_state(raw: Option<&str>) -> Result<Option<RequestState>> {
    match raw {
        None => Ok(Some(RequestState::Pending)),
        Some("all") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: canopy_domain::InvalidValue| Error::invalid("state", format!("{}, or all", e.0))),
    }
}

/// A workspace's requests, newest first (FE2; its managers and admins).
pub async fn list(
    store: &Store,
    by: &Principal,
    ws: &str,
    state: Option<RequestState>,
    paging: &Paging,
) -> Result<Page<RequestView>> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    list_page(&mut tx, RequestFilter { workspace_id: Some(ws.id), state, project_id: None }, paging).await
}

/// A project's pending requests, newest first, at most `limit`: shown in
/// place on its access page (FE1; the workspace's managers and admins).
pub async fn pending_of_project(
    store: &Store,
    by: &Principal,
    path: (&str, &str),
    limit: u32,
) -> Result<Vec<RequestView>> {
    let mut tx = store.read().await?;
    let (ws, p) = crate::load::project_in(&mut tx, by, path, Action::ManageWorkspace).await?;
    let filter =
        RequestFilter { workspace_id: Some(ws.id), state: Some(RequestState::Pending), project_id: Some(p.id) };
    Ok(list_page(&mut tx, filter, &Paging::first(limit)).await?.items)
}

/// Every workspace's requests, or one's, newest first (AD2; admins).
pub async fn list_all(
    store: &Store,
    by: &Principal,
    ws: Option<&str>,
    state: Option<RequestState>,
    paging: &Paging,
) -> Result<Page<RequestView>> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.read().await?;
    let workspace_id = match ws {
        Some(w) => Some(load::workspace(&mut tx, w).await?.id),
        None => None,
    };
    list_page(&mut tx, RequestFilter { workspace_id, state, project_id: None }, paging).await
}

/// One page of requests keyed by (requested at, id), each saying whether it
/// waits for an admin.
async fn list_page(tx: &mut Tx, filter: RequestFilter, paging: &Paging) -> Result<Page<RequestView>> {
    let after =
        paging.after_pair(|t| t.parse::<i64>().ok().and_then(|t| from_us(t).ok()), |id| Uuid::parse_str(id).ok())?;
    let rows = tx.role_requests(filter, after, paging.fetch()).await?;
    // each workspace's managers once per page, not once per request
    let mut managers: std::collections::BTreeMap<Uuid, Vec<PersonRecord>> = std::collections::BTreeMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for q in rows {
        let mut needs_admin = false;
        if q.state == RequestState::Pending {
            let all = match managers.entry(q.workspace_id) {
                std::collections::btree_map::Entry::Occupied(e) => e.get().clone(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(tx.workspace_managers(q.workspace_id).await?).clone()
                }
            };
            needs_admin = others_who_approve(tx, &q, all).await?.1;
        }
        views.push(RequestView { request: q, needs_admin });
    }
    Ok(page(views, paging.limit, |v| format!("{}/{}", to_us(v.request.requested_at), v.request.id)))
}

/// The people who may approve a request other than its requester, and
/// whether they are too few so that it waits for an admin (FE3).
async fn approvers(tx: &mut Tx, q: &RoleRequestRecord) -> Result<(Vec<PersonRecord>, bool)> {
    let managers = tx.workspace_managers(q.workspace_id).await?;
    others_who_approve(tx, q, managers).await
}

/// Of the workspace's `managers`, those who may approve `q`, and whether
/// they are too few (FE3).
async fn others_who_approve(
    tx: &mut Tx,
    q: &RoleRequestRecord,
    managers: Vec<PersonRecord>,
) -> Result<(Vec<PersonRecord>, bool)> {
    // neither the requester nor anyone the change gives access to may approve it
    let beneficiaries = tx.people_reached(q.subject).await?;
    let managers: Vec<PersonRecord> =
        managers.into_iter().filter(|m| m.id != q.requested_by_id && !beneficiaries.contains(&m.id)).collect();
    let needs_admin = four_eye::needs_admin(q.approvals_required, managers.len());
    Ok((managers, needs_admin))
}

async fn mail_all(
    tx: &mut Tx,
    people: &[PersonRecord],
    make: impl Fn(&Email) -> canopy_domain::mail::Mail,
    now: OffsetDateTime,
) -> Result<()> {
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
pub async fn open(tx: &mut Tx, by: &Principal, new: NewRoleRequest<'_>, now: OffsetDateTime) -> Result<RequestView> {
    // an API key asks on behalf of the person who made it: that person may
    // not approve it either (FE4), and hears the outcome
    let (requested_by_id, requested_by_key_id) = match by.actor.kind {
        ActorKind::User => (by.actor.id, None),
        _ => {
            let creator = tx.api_key(&by.actor.id.to_string()).await?.and_then(|k| k.created_by_id);
            (creator.unwrap_or(by.actor.id), Some(by.actor.id))
        }
    };
    let new = NewRoleRequest { requested_by_id, requested_by_key_id, ..new };
    if let Some(other) = tx.similar_pending_request(&new).await? {
        return Err(Error::conflict(format!(
            "request {other} asks for this already and waits for approval; decide or withdraw it first"
        )));
    }
    let q = tx.insert_role_request(new, now).await?;
    let subject = q.subject_string();
    let created = RoleRequestCreated {
        request: q.id,
        kind: q.kind.as_str().to_owned(),
        project: q.project.clone(),
        subject: subject.clone(),
        role: q.role.clone(),
        expires_at: q.expires_at,
        binding: q.binding_id,
        from: RequestedFrom { role: q.from_role.clone(), expires_at: q.from_expires_at },
        justification: q.justification.clone(),
        approvals_required: q.approvals_required,
    };
    tx.record(Some(q.workspace_id), now, &by.initiator(), created.into())?;
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
    Ok(RequestView { request: q, needs_admin })
}

/// One request of a workspace, for its managers.
pub async fn show(store: &Store, by: &Principal, (ws, id): (&str, &str)) -> Result<RequestView> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let q = load_request(&mut tx, &ws, id).await?;
    RequestView::of(&mut tx, q).await
}

async fn load_request(tx: &mut Tx, ws: &WorkspaceRecord, id: &str) -> Result<RoleRequestRecord> {
    let not_found = || Error::not_found(format!("request {id:?} does not exist in workspace {}", ws.identifier));
    Uuid::parse_str(id).map_err(|_| not_found())?;
    let q = tx.role_request(id).await?.ok_or_else(not_found)?;
    if q.workspace_id != ws.id {
        return Err(not_found());
    }
    Ok(q)
}

/// Load a request for a decision, under its lock, with the deciding person.
///
/// Only people decide: an API key may withdraw a request it made, nothing
/// else. Reaching it is `Action::DecideRequest`'s; what the caller may
/// decide is four-eye's, from the approver facts `authz::approver` derives.
async fn for_decision(
    tx: &mut Tx,
    by: &Principal,
    ws: &str,
    id: &str,
) -> Result<(WorkspaceRecord, RoleRequestRecord, Approver)> {
    let ws = load::workspace(tx, ws).await?;
    let role = by.workspace_role(tx, &ws).await?;
    let q = load_request(tx, &ws, id).await;
    let filed_with = q.as_ref().ok().and_then(|q| q.requested_by_key_id);
    if authorize(&by.actor, Action::DecideRequest { filed_with }, Some((ws.id, role))).is_err() {
        // outsiders learn nothing about the workspace's requests
        return Err(Error::Forbidden(format!(
            "only the managers of workspace {} and admins decide on its requests",
            ws.identifier
        )));
    }
    let approver = authz::approver(&by.actor, (ws.id, role));
    let q = q?;
    // the request first, then the workspace (member removals take it, so a
    // subject cannot leave between the check and the change), then the
    // project's tenants, as every writer does (the history follows at commit)
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

/// Whether a person may approve the workspace's requests now: as the
/// authorisation rules see their active account today (an admin, or a
/// manager of the workspace).
async fn may_approve(tx: &mut Tx, ws: &WorkspaceRecord, person: Uuid) -> Result<bool> {
    let Some(actor) = user_actor(tx, person).await? else { return Ok(false) };
    let person = Principal { actor, session: None, idle_until: None };
    let role = person.workspace_role(tx, ws).await?;
    let approver = authz::approver(&person.actor, (ws.id, role));
    Ok(approver.is_admin || approver.is_manager)
}

fn refused(r: Refusal) -> Error {
    match r {
        Refusal::Lapsed => Error::conflict(r.to_string()),
        Refusal::OwnRequest | Refusal::OwnAccess | Refusal::NotAnApprover => Error::Forbidden(r.to_string()),
        Refusal::AlreadyApproved | Refusal::Decided(_) => Error::conflict(r.to_string()),
    }
}

fn reason_text(raw: Option<&str>) -> Result<Option<String>> {
    Ok(note_text("reason", raw)?.map(str::to_owned))
}

/// Approve a request (FE2–FE4). It applies once it has its approvals from
/// managers other than the requester, or at once when an admin approves.
/// Nobody approves their own request (403); approving twice or a decided
/// request is a conflict (409). A request the world has moved past (its
/// binding removed, its expiration passed) ends `void` instead of applying.
pub async fn approve(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, id): (&str, &str),
    reason: Option<&str>,
) -> Result<RequestView> {
    let reason = reason_text(reason)?;
    let mut tx = store.write().await?;
    by.require(Action::ApproveRequest)?;
    let (ws, q, approver) = for_decision(&mut tx, by, ws, id).await?;
    let beneficiaries = tx.people_reached(q.subject).await?;
    let verdict = four_eye::approve(&q.rule(beneficiaries), approver).map_err(refused)?;
    if four_eye::lapsed(q.requested_at, now) {
        // the expiry job voids it and tells the requester
        return Err(refused(Refusal::Lapsed));
    }
    tx.add_approval(q.id, approver.id, &by.actor.name, now).await?;
    if verdict == Verdict::Apply {
        // the bindings it touches, then the project's tenant work: the order
        // the expiry job and every binding change take them in (a void
        // request only costs the tenants a needless look)
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
        tx.mark_dirty(Reach::Project(q.project_id), PRIORITY_NORMAL, now).await?;
    }
    let subject = q.subject_string();
    let (approvals, required) = match verdict {
        Verdict::Wait { approvals, required } => (approvals, required),
        Verdict::Apply => {
            (u32::try_from(q.approvals.len()).unwrap_or(u32::MAX).saturating_add(1), q.approvals_required)
        }
    };
    let given = RoleRequestApprovalGiven {
        request: q.id,
        project: q.project.clone(),
        subject,
        role: q.role.clone(),
        approvals,
        approvals_required: required,
        admin: approver.is_admin,
        reason: reason.clone(),
    };
    tx.record(Some(ws.id), now, &by.initiator(), given.into())?;
    if verdict == Verdict::Apply {
        settle(&mut tx, &ws, &q, by, reason.as_deref(), now).await?;
    }
    let q = load_request(&mut tx, &ws, id).await?;
    let view = RequestView::of(&mut tx, q).await?;
    tx.commit().await?;
    Ok(view)
}

/// Decline a request, or withdraw one's own: it ends without effect (FE2).
pub async fn decline(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, id): (&str, &str),
    reason: Option<&str>,
) -> Result<RequestView> {
    let reason = reason_text(reason)?;
    let mut tx = store.write().await?;
    let (ws, q, who) = for_decision(&mut tx, by, ws, id).await?;
    let beneficiaries = tx.people_reached(q.subject).await?;
    let rule = q.rule(beneficiaries);
    four_eye::decline(&rule, who).map_err(refused)?;
    let withdrawn = four_eye::withdraws(&rule, who.id);
    let decision =
        Decision { state: RequestState::Declined, by: &by.actor.name, reason: reason.as_deref(), binding_id: None };
    if !tx.decide_role_request(q.id, decision, now).await? {
        return Err(Error::conflict("this request was decided meanwhile"));
    }
    let declined = RoleRequestDeclined {
        request: q.id,
        project: q.project.clone(),
        subject: q.subject_string(),
        role: q.role.clone(),
        withdrawn,
        reason: reason.clone(),
    };
    tx.record(Some(ws.id), now, &by.initiator(), declined.into())?;
    if !withdrawn {
        tx.tell_requester(&q, RequestState::Declined, &by.actor.name, reason.as_deref(), now).await?;
    }
    let q = load_request(&mut tx, &ws, id).await?;
    tx.commit().await?;
    Ok(RequestView { request: q, needs_admin: false })
}

/// The history event of a request closed as void for `reason`.
pub fn void_event(q: &RoleRequestRecord, reason: &str) -> RoleRequestVoid {
    RoleRequestVoid {
        request: q.id,
        project: q.project.clone(),
        subject: q.subject_string(),
        role: q.role.clone(),
        reason: reason.to_owned(),
    }
}

/// Close as void, for `reason`, the pending requests that name `subject`
/// or that `requester` filed (the subject or requester is going), each with
/// its history event, and tell their requesters. Locks come in the order
/// every decision takes them: the requests, then their workspaces and
/// `also` (the workspaces the caller changes next) in ascending id.
pub async fn close_pending(
    tx: &mut Tx,
    subject: Subject,
    requester: Option<Uuid>,
    also: impl IntoIterator<Item = Uuid>,
    by: &Principal,
    reason: &str,
    now: OffsetDateTime,
) -> Result<()> {
    let requests = tx.pending_requests_touching(Some(subject), requester).await?;
    for q in &requests {
        tx.lock_role_request(q.id).await?;
    }
    let workspaces: std::collections::BTreeSet<Uuid> = requests.iter().map(|q| q.workspace_id).chain(also).collect();
    tx.lock_workspaces(&workspaces).await?;
    for q in &requests {
        void(tx, q, (&by.initiator(), &by.actor.name), reason, now).await?;
    }
    Ok(())
}

/// Void a pending request that waited `four_eye::REQUEST_LIFETIME` without
/// a decision (FE2), as the expiry job does: lock it, close it as void with
/// its history event, and tell its requester. False, changing nothing,
/// when it has not lapsed, or was decided meanwhile (by a person, or
/// another node).
pub async fn lapse(tx: &mut Tx, by: &Initiator, q: &RoleRequestRecord, now: OffsetDateTime) -> Result<bool> {
    if !four_eye::lapsed(q.requested_at, now) {
        return Ok(false);
    }
    tx.lock_role_request(q.id).await?;
    void(tx, q, (by, &by.name), &VoidReason::Lapsed.to_string(), now).await
}

/// Close a pending request, locked by the caller, as void for `reason`,
/// with its history event, and tell its requester; false when it was
/// decided meanwhile.
async fn void(
    tx: &mut Tx,
    q: &RoleRequestRecord,
    (initiator, name): (&Initiator, &str),
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool> {
    let decision = Decision { state: RequestState::Void, by: name, reason: Some(reason), binding_id: None };
    if !tx.decide_role_request(q.id, decision, now).await? {
        return Ok(false);
    }
    tx.record(Some(q.workspace_id), now, initiator, void_event(q, reason).into())?;
    tx.tell_requester(q, RequestState::Void, name, Some(reason), now).await?;
    Ok(true)
}

/// Whether the person or API key that filed `q` may still make its change
/// in `ws` now (issue 11, finding 13): an account deactivated, removed from
/// the workspace or demoted, or a key deleted or expired, cannot.
async fn requester_may_ask(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    q: &RoleRequestRecord,
    now: OffsetDateTime,
) -> Result<bool> {
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
    let requester = Principal { actor, session: None, idle_until: None };
    Ok(requester.require_in(tx, ws, Action::ManageWorkspace).await.is_ok())
}

/// Apply an approved request, or void it where it can no longer apply; tell the requester.
async fn settle(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    q: &RoleRequestRecord,
    by: &Principal,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    let project = tx
        .project_by_id(q.project_id)
        .await?
        .ok_or_else(|| Error::Internal("the request's project vanished".into()))?;
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
    let approved_by: Vec<String> =
        q.approvals.iter().map(|a| a.approver.clone()).chain([by.actor.name.clone()]).collect();
    let (state, made, why) = if let Some(void) = four_eye::void_reason(ctx, now) {
        let why = void.to_string();
        tx.record(Some(ws.id), now, &by.initiator(), void_event(q, &why).into())?;
        (RequestState::Void, None, Some(why))
    } else {
        let approved = RoleRequestApproved {
            request: q.id,
            kind: q.kind.as_str().to_owned(),
            project: q.project.clone(),
            subject: subject.clone(),
            role: q.role.clone(),
            approved_by,
            reason: reason.map(str::to_owned),
        };
        tx.record(Some(ws.id), now, &by.initiator(), approved.into())?;
        let by = ChangeBy { initiator: by.initiator(), name: &by.actor.name, request: Some(q.id) };
        // a change whose expiration passed ends the binding: its role stays (finding 16)
        let ends = four_eye::ends_access(q.kind, q.expires_at, now);
        let role_name = match (&binding, ends) {
            (Some(b), true) => b.role_identifier.clone(),
            _ => q.role.clone(),
        };
        let role =
            tx.project_role(&role_name).await?.ok_or_else(|| Error::Internal("the request's role vanished".into()))?;
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
            (_, None) => return Err(Error::Internal("void_reason let a change without its binding through".into())),
        };
        (RequestState::Approved, made, reason.map(str::to_owned))
    };
    let decision = Decision { state, by: &by.actor.name, reason: why.as_deref(), binding_id: made };
    if !tx.decide_role_request(q.id, decision, now).await? {
        return Err(Error::conflict("this request was decided meanwhile"));
    }
    tx.tell_requester(q, state, &by.actor.name, why.as_deref(), now).await?;
    Ok(())
}
