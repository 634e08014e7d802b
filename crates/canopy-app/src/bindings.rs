//! Project bindings: who holds which project role, possibly until when
//! (AC1–AC7): add, change (and extend), remove; where the workspace needs
//! four-eye approval (FE1), each becomes a pending request instead.
//!
//! The steps `apply_add`, `apply_change`, `apply_remove` and `end` are the
//! one code path of each change with its history event and e-mails, used
//! by requests that settle, emergency grants (`apply_emergency_add`) and
//! membership removals alike; `expire` is the expiry job's end of a binding.

use canopy_domain::access::{self, Grant, check_binding_expiry};
use canopy_domain::authz::Action;
use canopy_domain::events::{BindingChanged, BindingCreated, BindingExpired, BindingRemoved, BindingTerms};
use canopy_domain::four_eye::RequestKind;
use canopy_domain::history::Initiator;
use canopy_domain::mail::{AccessChange, AccessNotice};
use canopy_domain::{Subject, SubjectKind};
use canopy_store::{
    BindingRecord, NewBinding, NewRoleRequest, ProjectRecord, ProjectRoleRecord, Store, Tx, WorkspaceRecord,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::load::{self, note_text, subject_string};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;
use crate::requests::{self, RequestView};

/// What a change of a binding did: applied at once, or recorded as a
/// pending request where the workspace needs four-eye approval.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Pending(Box<RequestView>),
}

/// The subject a binding names, as the caller wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectName {
    /// A username.
    User(String),
    /// A group identifier.
    Group(String),
}

impl SubjectName {
    /// The input field that names it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Group(_) => "group",
        }
    }
}

/// A binding to add (AC1, AC2, AC7).
#[derive(Debug, Clone)]
pub struct NewBindingInput {
    pub subject: SubjectName,
    /// A project role identifier.
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
    /// Why; required where the change needs four-eye approval.
    pub justification: Option<String>,
}

/// A change of a binding (AC5, AC7): `None` keeps what it has;
/// `expires_at: Some(None)` removes the expiry.
#[derive(Debug, Clone, Default)]
pub struct BindingChange {
    pub role: Option<String>,
    pub expires_at: Option<Option<OffsetDateTime>>,
    pub justification: Option<String>,
}

/// Who makes a change to a binding, and through which approved request
/// (recorded as the `request` of the binding's history event).
pub struct ChangeBy<'a> {
    pub initiator: Initiator,
    pub name: &'a str,
    pub request: Option<Uuid>,
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
    note_text("justification", raw)
}

/// One page of a project's bindings, in id order (members of the workspace).
pub async fn list(store: &Store, by: &Principal, path: (&str, &str), paging: &Paging) -> Result<Page<BindingRecord>> {
    let mut tx = store.read().await?;
    let (_, p) = load::project_in(&mut tx, by, path, Action::ViewWorkspace).await?;
    let rows = tx.project_bindings_page(p.id, paging.after.as_deref(), paging.fetch()).await?;
    Ok(page(rows, paging.limit, |b| b.binding.id.to_string()))
}

/// One binding of a project (members of the workspace).
pub async fn show(store: &Store, by: &Principal, (ws, project, id): (&str, &str, &str)) -> Result<BindingRecord> {
    let mut tx = store.read().await?;
    let (_, p) = load::project_in(&mut tx, by, (ws, project), Action::ViewWorkspace).await?;
    load::binding(&mut tx, &p, id).await
}

/// Resolve and load what a manager's change names: workspace and project,
/// refusing principals who may not manage the workspace (WS7, AD1).
async fn managed_project(
    tx: &mut Tx,
    by: &Principal,
    ws: &str,
    project: &str,
) -> Result<(WorkspaceRecord, ProjectRecord)> {
    by.project_in(tx, (ws, project), Action::ManageWorkspace).await
}

/// Where the workspace needs four-eye approval, the justification a request
/// must carry; `None` where changes apply at once.
async fn needs_request<'a>(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    justification: Option<&'a str>,
) -> Result<Option<(&'a str, u32)>> {
    let four_eye = tx.effective_four_eye(ws.id).await?;
    if !four_eye.enabled {
        return Ok(None);
    }
    match justification {
        Some(j) => Ok(Some((j, four_eye.approvals))),
        None => Err(Error::invalid(
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

/// Record a change as a pending request and commit.
async fn pend<T>(
    mut tx: Tx,
    by: &Principal,
    (ws, p): (&WorkspaceRecord, &ProjectRecord),
    ask: Ask<'_>,
    (justification, approvals): (&str, u32),
    now: OffsetDateTime,
) -> Result<Outcome<T>> {
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
        requested_by_id: by.actor.id,
        requested_by: &by.actor.name,
        requested_by_key_id: None,
        subject_name: ask.subject_name,
    };
    let request = requests::open(&mut tx, by, new, now).await?;
    tx.commit().await?;
    Ok(Outcome::Pending(Box::new(request)))
}

/// Whether a subject may hold project roles in the workspace now: an active
/// user who is a member, or a group that is a member (AC1, AC10).
pub async fn subject_eligible(tx: &mut Tx, ws: &WorkspaceRecord, subject: Subject) -> Result<bool> {
    let (active, member) = match subject.kind {
        SubjectKind::User => (
            tx.user_by_id(subject.id).await?.is_some_and(|u| u.active),
            !tx.membership_roles_of_user(ws.id, subject.id).await?.is_empty(),
        ),
        SubjectKind::Group => (true, tx.member_role(ws.id, SubjectKind::Group, subject.id).await?.is_some()),
    };
    Ok(access::may_hold_project_roles(subject.kind, active, member))
}

/// Resolve the subject a binding names, or say (on its field) why it cannot
/// hold project roles in the workspace (AC1, AC10).
async fn eligible_subject(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    name: &SubjectName,
) -> Result<Result<(Subject, String), FieldError>> {
    let field = name.field();
    let refuse = |message: String| Ok(Err(FieldError::new(field, message)));
    match name {
        SubjectName::User(username) => match tx.user_by_username(username).await? {
            None => refuse(format!("user {username:?} does not exist")),
            Some(u) if !u.active => refuse(format!("the account of {username} is deactivated")),
            Some(u) if tx.membership_roles_of_user(ws.id, u.id).await?.is_empty() => refuse(format!(
                "{username} is not a member of workspace {}; invite them to the workspace first",
                ws.identifier
            )),
            Some(u) => Ok(Ok((Subject::user(u.id), u.username))),
        },
        SubjectName::Group(group) => match tx.group_by_identifier(group).await? {
            None => refuse(format!("group {group:?} does not exist")),
            Some(g) if tx.member_role(ws.id, SubjectKind::Group, g.id).await?.is_none() => refuse(format!(
                "group {group} is not a member of workspace {}; invite it to the workspace first",
                ws.identifier
            )),
            Some(g) => Ok(Ok((Subject::group(g.id), g.identifier))),
        },
    }
}

/// Bind a user or a group to a project with a project role (AC1, AC2, AC7).
///
/// The subject must be a member of the workspace. A subject may hold several
/// roles; binding the same role twice is a conflict unless the earlier
/// binding has expired, which this one then replaces. Where the workspace
/// needs four-eye approval (FE1), the outcome is the pending request.
pub async fn add(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project): (&str, &str),
    input: NewBindingInput,
) -> Result<Outcome<BindingRecord>> {
    let mut errors = Vec::new();
    let justification = justification(input.justification.as_deref()).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let mut tx = store.write().await?;
    let (ws, p) = managed_project(&mut tx, by, ws, project).await?;
    // A member removal takes the workspace exclusively: the subject cannot
    // leave between the membership check below and the binding. Other adds
    // share it (one exclusive lock made PostgreSQL run a workspace's adds one
    // at a time: 425 a second in B4), unless four-eye approval applies: a
    // request is opened after a look for a similar one pending, which
    // identical adds must not both pass.
    let four_eye = tx.effective_four_eye(ws.id).await?.enabled;
    if four_eye {
        tx.lock_workspace(ws.id).await?;
    } else {
        tx.share_workspace(ws.id).await?;
        if tx.effective_four_eye(ws.id).await?.enabled {
            return Err(Error::conflict(format!(
                "four-eye approval was just switched on for workspace {}; try again",
                ws.identifier
            )));
        }
    }
    let maximum = tx.settings().await?.max_binding_duration();
    if let Err(err) = check_binding_expiry(input.expires_at, now, maximum) {
        errors.push(FieldError::new("expires_at", err.to_string()));
    }
    let role = tx.project_role(&input.role).await?;
    if role.is_none() {
        errors.push(FieldError::new("role", format!("project role {:?} does not exist", input.role)));
    }
    let subject = match eligible_subject(&mut tx, &ws, &input.subject).await? {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let (Some(role), Some((subject, raw_name)), true) = (role, subject, errors.is_empty()) else {
        return Err(Error::Invalid(errors));
    };
    let name = subject_string(subject.kind, &raw_name);
    if let Some((justification, approvals)) = needs_request(&mut tx, &ws, justification).await? {
        let existing = tx.find_binding(p.id, subject, role.id).await?;
        if access::grant(existing.as_ref().map(|b| &b.binding), now) == Grant::AlreadyHeld {
            return Err(held(&name, &role, &p));
        }
        let ask = Ask {
            kind: RequestKind::Add,
            binding: None,
            subject,
            subject_name: &raw_name,
            role_id: role.id,
            expires_at: input.expires_at,
        };
        return pend(tx, by, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let add = AddBinding {
        subject,
        name: &name,
        role: &role,
        expires_at: input.expires_at,
        justification,
        granted_by: &by.actor.name,
    };
    let change_by = ChangeBy { initiator: by.initiator(), name: &by.actor.name, request: None };
    let b = apply_add(&mut tx, &ws, &p, add, &change_by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(b))
}

fn held(name: &str, role: &ProjectRoleRecord, p: &ProjectRecord) -> Error {
    Error::conflict_on("role", format!("{name} already holds {} on {}", role.identifier, p.identifier))
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
) -> Result<BindingRecord> {
    grant_binding(tx, (ws, p), add, Mode::Manager, by, now).await
}

/// Grant emergency access (AD3) through the add step of [`apply_add`]:
/// the grant's `binding_created` says it is an emergency's, and a binding
/// of the role the subject holds already is kept, until the later of its
/// end and `add.expires_at` (`access::emergency_end`: an emergency never
/// shortens access), with `binding_changed` where that moves its end. The
/// people it reaches are told they have the role either way.
pub async fn apply_emergency_add(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    p: &ProjectRecord,
    add: AddBinding<'_>,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> Result<BindingRecord> {
    let Some(until) = add.expires_at else { return Err(Error::internal("an emergency grant without its end")) };
    grant_binding(tx, (ws, p), add, Mode::Emergency(until), by, now).await
}

/// Who grants through [`grant_binding`].
#[derive(Clone, Copy)]
enum Mode {
    /// A manager, or an approved request: a role held already is a conflict.
    Manager,
    /// An emergency grant, asked until this instant.
    Emergency(OffsetDateTime),
}

/// The one add step: what a grant does to a binding of the role the
/// subject may hold already is `access::grant`'s to say.
async fn grant_binding(
    tx: &mut Tx,
    (ws, p): (&WorkspaceRecord, &ProjectRecord),
    add: AddBinding<'_>,
    mode: Mode,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> Result<BindingRecord> {
    let AddBinding { subject, name, role, expires_at, justification, granted_by } = add;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), role.identifier.as_str());
    let existing = tx.find_binding(p.id, subject, role.id).await?;
    match (access::grant(existing.as_ref().map(|b| &b.binding), now), existing, mode) {
        (Grant::AlreadyHeld, Some(held), Mode::Emergency(asked)) => {
            let later = access::emergency_end(held.binding.expires_at, asked);
            if later != held.binding.expires_at {
                tx.update_binding(held.binding.id, role.id, later, now).await?;
                let changed = BindingChanged {
                    binding: held.binding.id,
                    project: p.identifier.clone(),
                    subject: name.to_owned(),
                    old: BindingTerms { role: role.identifier.clone(), expires_at: held.binding.expires_at },
                    new: BindingTerms { role: role.identifier.clone(), expires_at: later },
                    justification: justification.map(str::to_owned),
                    emergency: true,
                    request: by.request,
                };
                tx.record(Some(ws.id), now, &by.initiator, changed.into())?;
            }
            let b = load::binding(tx, p, &held.binding.id.to_string()).await?;
            notify(tx, &b, AccessChange::Added, what, by.name, now).await?;
            return Ok(b);
        }
        (Grant::AlreadyHeld, _, _) => return Err(held(name, role, p)),
        (Grant::ReplaceEnded(_), Some(ended), _) => {
            replace_expired(tx, (ws.id, &p.identifier), &ended, by, now).await?;
        }
        _ => {}
    }
    let new = NewBinding { project_id: p.id, subject, role_id: role.id, expires_at, justification, granted_by };
    let b = tx.insert_binding(new, now).await?;
    let created = BindingCreated {
        binding: b.binding.id,
        project: p.identifier.clone(),
        subject: name.to_owned(),
        role: role.identifier.clone(),
        expires_at,
        justification: justification.map(str::to_owned),
        emergency: matches!(mode, Mode::Emergency(_)),
        request: by.request,
    };
    tx.record(Some(ws.id), now, &by.initiator, created.into())?;
    notify(tx, &b, AccessChange::Added, what, by.name, now).await?;
    Ok(b)
}

/// Remove an expired binding that a new grant of the same subject and role
/// replaces.
async fn replace_expired(
    tx: &mut Tx,
    (workspace_id, project): (Uuid, &str),
    existing: &BindingRecord,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> Result<()> {
    tx.delete_binding(existing.binding.id, now).await?;
    let removed = removed_event(project, existing, Some("expired binding replaced"), by.request);
    tx.record(Some(workspace_id), now, &by.initiator, removed.into())?;
    Ok(())
}

/// The `binding_removed` event of `b`, a binding of `project`.
fn removed_event(project: &str, b: &BindingRecord, reason: Option<&str>, request: Option<Uuid>) -> BindingRemoved {
    BindingRemoved {
        binding: b.binding.id,
        project: project.to_owned(),
        subject: subject_string(b.binding.subject.kind, &b.subject_name),
        role: b.role_identifier.clone(),
        expires_at: b.binding.expires_at,
        reason: reason.map(str::to_owned),
        request,
    }
}

/// E-mail the people a binding's change affects (AC11).
pub async fn notify(
    tx: &mut Tx,
    b: &BindingRecord,
    change: AccessChange,
    (workspace, project, role): (&str, &str, &str),
    by: &str,
    now: OffsetDateTime,
) -> Result<()> {
    let notice = AccessNotice { role, ..b.notice(change, workspace, project, by) };
    tx.notify_access(b.binding.subject, &notice, now).await?;
    Ok(())
}

/// Change a binding's role or expiration date (AC5, AC7); an expiration of
/// `Some(None)` removes it. Where the workspace needs four-eye approval
/// (FE1), the outcome is the pending request.
pub async fn change(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project, id): (&str, &str, &str),
    input: BindingChange,
) -> Result<Outcome<BindingRecord>> {
    let justification = justification(input.justification.as_deref())?;
    let mut tx = store.write().await?;
    let (ws, p) = managed_project(&mut tx, by, ws, project).await?;
    let before = load::binding(&mut tx, &p, id).await?;
    let role = match &input.role {
        Some(r) => tx
            .project_role(r)
            .await?
            .ok_or_else(|| Error::invalid("role", format!("project role {r:?} does not exist")))?,
        None => {
            tx.project_role(&before.role_identifier).await?.ok_or_else(|| Error::internal("binding's role vanished"))?
        }
    };
    let expires_at = input.expires_at.unwrap_or(before.binding.expires_at);
    // a new expiration, or another role (a new grant), lies within the maximum
    let maximum = tx.settings().await?.max_binding_duration();
    if input.expires_at.is_some() || (role.id != before.binding.role_id && maximum.is_some()) {
        check_binding_expiry(expires_at, now, maximum).map_err(|err| Error::invalid("expires_at", err.to_string()))?;
    }
    if let Some((justification, approvals)) = needs_request(&mut tx, &ws, justification).await? {
        if role.id == before.binding.role_id && expires_at == before.binding.expires_at {
            return Err(Error::invalid("role", "changes nothing: give another role or expires_at to request"));
        }
        if role.id != before.binding.role_id {
            let other = tx.find_binding(p.id, before.binding.subject, role.id).await?;
            if access::grant(other.as_ref().map(|b| &b.binding), now) == Grant::AlreadyHeld {
                let name = subject_string(before.binding.subject.kind, &before.subject_name);
                return Err(held(&name, &role, &p));
            }
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
        return pend(tx, by, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let change_by = ChangeBy { initiator: by.initiator(), name: &by.actor.name, request: None };
    let after = apply_change(&mut tx, &ws, &p, &before, &role, expires_at, &change_by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(after))
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
) -> Result<BindingRecord> {
    let name = subject_string(before.binding.subject.kind, &before.subject_name);
    if role.id != before.binding.role_id {
        let other = tx.find_binding(p.id, before.binding.subject, role.id).await?;
        match (access::grant(other.as_ref().map(|b| &b.binding), now), other) {
            (Grant::AlreadyHeld, _) => return Err(held(&name, role, p)),
            (Grant::ReplaceEnded(_), Some(ended)) => {
                replace_expired(tx, (ws.id, &p.identifier), &ended, by, now).await?;
            }
            _ => {}
        }
    }
    tx.update_binding(before.binding.id, role.id, expires_at, now).await?;
    let changed = BindingChanged {
        binding: before.binding.id,
        project: p.identifier.clone(),
        subject: name,
        old: BindingTerms { role: before.role_identifier.clone(), expires_at: before.binding.expires_at },
        new: BindingTerms { role: role.identifier.clone(), expires_at },
        justification: None,
        emergency: false,
        request: by.request,
    };
    tx.record(Some(ws.id), now, &by.initiator, changed.into())?;
    let after = load::binding(tx, p, &before.binding.id.to_string()).await?;
    let what = (ws.identifier.as_str(), p.identifier.as_str(), role.identifier.as_str());
    notify(tx, &after, AccessChange::Changed, what, by.name, now).await?;
    Ok(after)
}

/// Remove a binding (AC6). Binding the subject again later restores the
/// access. Where the workspace needs four-eye approval (FE1), the outcome is
/// the pending request.
pub async fn remove(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, project, id): (&str, &str, &str),
    justification: Option<&str>,
) -> Result<Outcome<()>> {
    let justification = self::justification(justification)?;
    let mut tx = store.write().await?;
    let (ws, p) = managed_project(&mut tx, by, ws, project).await?;
    let b = load::binding(&mut tx, &p, id).await?;
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
        return pend(tx, by, (&ws, &p), ask, (justification, approvals), now).await;
    }
    let change_by = ChangeBy { initiator: by.initiator(), name: &by.actor.name, request: None };
    apply_remove(&mut tx, &ws, &p, &b, &change_by, now).await?;
    tx.commit().await?;
    Ok(Outcome::Done(()))
}

/// Remove a binding at a manager's or an approved request's word, with its
/// history event and e-mails.
pub async fn apply_remove(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    p: &ProjectRecord,
    b: &BindingRecord,
    by: &ChangeBy<'_>,
    now: OffsetDateTime,
) -> Result<()> {
    end(tx, (ws.id, &ws.identifier, &p.identifier), b, by, None, now).await
}

/// End a binding: tell the people it reached (AC11), delete it, and record
/// `binding_removed` with `reason` where the removal follows from something
/// else (a membership ended, an account revoked). The one removal step.
pub async fn end(
    tx: &mut Tx,
    (workspace_id, workspace, project): (Uuid, &str, &str),
    b: &BindingRecord,
    by: &ChangeBy<'_>,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    let what = (workspace, project, b.role_identifier.as_str());
    notify(tx, b, AccessChange::Removed, what, by.name, now).await?;
    tx.delete_binding(b.binding.id, now).await?;
    let removed = removed_event(project, b, reason, by.request);
    tx.record(Some(workspace_id), now, &by.initiator, removed.into())?;
    Ok(())
}

/// End a binding whose expiration passed (AC7), as the expiry job does:
/// mark it ended (it stays, listed as expired, and a new expiration brings
/// it back), record `binding_expired`, and tell the people it reached
/// unless the news is stale (`access::expiry_notice_due`). False, changing
/// nothing, when it is still in force, was ended already (by another node)
/// or its expiration changed meanwhile.
pub async fn expire(tx: &mut Tx, by: &ChangeBy<'_>, b: &BindingRecord, now: OffsetDateTime) -> Result<bool> {
    let Some(expires_at) = b.binding.expires_at else { return Ok(false) };
    if access::in_force_at(Some(expires_at), now) {
        return Ok(false);
    }
    let Some(project) = tx.project_by_id(b.binding.project_id).await? else { return Ok(false) };
    if !tx.end_expired_binding(b.binding.id, expires_at, now).await? {
        return Ok(false);
    }
    let expired = BindingExpired {
        binding: b.binding.id,
        project: project.identifier.clone(),
        subject: subject_string(b.binding.subject.kind, &b.subject_name),
        role: b.role_identifier.clone(),
        expires_at,
    };
    tx.record(Some(project.workspace_id), now, &by.initiator, expired.into())?;
    if access::expiry_notice_due(expires_at, now) {
        let workspace = tx.workspace_by_id(project.workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
        let what = (workspace.as_str(), project.identifier.as_str(), b.role_identifier.as_str());
        notify(tx, b, AccessChange::Expired, what, by.name, now).await?;
    }
    Ok(true)
}
