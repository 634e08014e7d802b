//! Emergency access (AD3, AD4): grant a person a project role in one step,
//! and take everything a person holds away in one step, reporting per
//! tenant when the platform confirmed the removal.

use std::collections::{BTreeMap, BTreeSet};

use canopy_domain::access::check_new_expiry;
use canopy_domain::authz::Action;
use canopy_domain::events::{
    ApiKeyDeleted, BindingRemoved, EmergencyAccessGranted, EmergencyRevocation, GroupMemberRemoved, MemberAdded,
    MemberRemoved, RevokedAccess, RevokedApiKey, RevokedBinding, RevokedMembership, UserDeactivated, VoidedRequest,
};
use canopy_domain::four_eye::RequestState;
use canopy_domain::{Subject, SubjectKind, WorkspaceRole};
use canopy_store::{Decision, PRIORITY_URGENT, Reach, RevocationRecord, Store, Tx, UserChanges, UserRecord};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::bindings;
use crate::error::{Error, FieldError, Result};
use crate::load::{note_text, subject_string};
use crate::principal::Principal;
use crate::requests::void_event;
use crate::users::{is_active_admin, keep_an_admin};

/// An emergency grant as asked (AD3): the person by `user` (username) or
/// `email`, where, which role, until when, and why.
#[derive(Debug, Clone, Default)]
pub struct GrantInput {
    pub user: Option<String>,
    pub email: Option<String>,
    pub workspace: String,
    pub project: String,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
    pub justification: Option<String>,
}

/// What an emergency grant did.
#[derive(Debug, Clone)]
pub struct GrantOutcome {
    pub user: String,
    pub workspace: String,
    pub project: String,
    pub role: String,
    /// Until when the access lasts (the later end where it was held already).
    pub expires_at: Option<OffsetDateTime>,
    pub binding: Uuid,
    pub member_added: bool,
}

/// An emergency revocation as asked (AD4).
#[derive(Debug, Clone, Default)]
pub struct RevokeInput {
    pub user: Option<String>,
    pub email: Option<String>,
    pub justification: Option<String>,
}

/// A revocation and, per (tenant, platform role) the person held, when the
/// platform confirmed its removal so far.
#[derive(Debug, Clone)]
pub struct RevocationReport {
    pub record: RevocationRecord,
    pub confirmed: BTreeMap<(Uuid, String), OffsetDateTime>,
}

/// The person a request names by `user` (username) or `email`.
async fn person(
    tx: &mut Tx,
    user: Option<&str>,
    email: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<UserRecord>> {
    let (key, found) = match (user, email) {
        (Some(u), None) => ("user", tx.user_by_username(u).await?),
        (None, Some(e)) => ("email", tx.user_by_email(e.trim()).await?),
        _ => {
            errors.push(FieldError::new("user", "give exactly one of user or email"));
            return Ok(None);
        }
    };
    if found.is_none() {
        let who = user.or(email).unwrap_or_default();
        errors.push(FieldError::new(key, format!("no account {who:?}: emergency access is for existing accounts")));
    }
    Ok(found)
}

/// The justification a request must carry: trimmed, 1 to 1000 characters.
fn justification(j: Option<&str>, required: bool, errors: &mut Vec<FieldError>) -> Option<String> {
    match note_text("justification", j) {
        Err(e) => {
            errors.push(e);
            None
        }
        Ok(None) if required => {
            errors.push(FieldError::new("justification", "is required: say why access is needed"));
            None
        }
        Ok(j) => j.map(str::to_owned),
    }
}

/// Grant a person emergency access (AD3): made a member of the workspace
/// when they are not, and bound to the project with the role until the
/// mandatory expiration, bypassing four-eye approval; in one transaction,
/// and replicated before other work. Admins, or managers of the workspace.
pub async fn grant(store: &Store, by: &Principal, now: OffsetDateTime, input: GrantInput) -> Result<GrantOutcome> {
    let mut errors = Vec::new();
    let expires_at = match input.expires_at {
        None => {
            errors.push(FieldError::new("expires_at", "is required: emergency access always ends"));
            None
        }
        Some(e) => match check_new_expiry(e, now) {
            Ok(()) => Some(e),
            Err(err) => {
                errors.push(FieldError::new("expires_at", err.to_string()));
                None
            }
        },
    };
    let why = justification(input.justification.as_deref(), true, &mut errors);
    let mut tx = store.write().await?;
    let maximum = tx.settings().await?.max_binding_duration();
    if let Some(e) = expires_at
        && let Err(err) = canopy_domain::access::check_binding_expiry(Some(e), now, maximum)
    {
        errors.push(FieldError::new("expires_at", err.to_string()));
    }
    let Some(ws) = tx.workspace_by_identifier(&input.workspace).await? else {
        return Err(Error::invalid("workspace", format!("workspace {:?} does not exist", input.workspace)));
    };
    by.require_in(&mut tx, &ws, Action::GrantEmergencyAccess).await?;
    let project = tx.project(ws.id, &input.project).await?;
    if project.is_none() {
        errors.push(FieldError::new(
            "project",
            format!("project {:?} does not exist in {}", input.project, ws.identifier),
        ));
    }
    let role = tx.project_role(&input.role).await?;
    if role.is_none() {
        errors.push(FieldError::new("role", format!("project role {:?} does not exist", input.role)));
    }
    let user = person(&mut tx, input.user.as_deref(), input.email.as_deref(), &mut errors).await?;
    if let Some(u) = &user
        && !u.active
    {
        errors.push(FieldError::new("user", format!("the account of {} is deactivated", u.username)));
    }
    let (Some(p), Some(role), Some(user), Some(expires_at), true) =
        (project, role, user, expires_at, errors.is_empty())
    else {
        return Err(Error::Invalid(errors));
    };
    let initiator = by.initiator();
    let name = subject_string(SubjectKind::User, &user.username);
    let subject = Subject::user(user.id);
    tx.lock_workspace(ws.id).await?;
    let member_added = tx.membership_roles_of_user(ws.id, user.id).await?.is_empty();
    if member_added {
        tx.upsert_member(ws.id, SubjectKind::User, user.id, WorkspaceRole::Member, &by.actor.name, now).await?;
    }
    if member_added {
        let added =
            MemberAdded { subject: name.clone(), role: WorkspaceRole::Member.as_str().to_owned(), emergency: true };
        tx.record(Some(ws.id), now, &initiator, added.into())?;
    }
    // the one add step; held already, the access lasts until the later of
    // the two ends (an emergency never shortens access someone has)
    let add = bindings::AddBinding {
        subject,
        name: &name,
        role: &role,
        expires_at: Some(expires_at),
        justification: why.as_deref(),
        granted_by: &by.actor.name,
    };
    let change_by = bindings::ChangeBy { initiator: initiator.clone(), name: &by.actor.name, request: None };
    let granted = bindings::apply_emergency_add(&mut tx, &ws, &p, add, &change_by, now).await?;
    let (binding, until) = (granted.binding.id, granted.binding.expires_at);
    // the role reaches the project's tenants before other work (AD3)
    tx.mark_dirty(Reach::Project(p.id), PRIORITY_URGENT, now).await?;
    let event = EmergencyAccessGranted {
        user: user.username.clone(),
        project: p.identifier.clone(),
        role: role.identifier.clone(),
        expires_at: until,
        justification: why.clone(),
        member_added,
    };
    tx.record(Some(ws.id), now, &initiator, event.into())?;
    let approves_alone = by.require(Action::ApproveAlone).is_ok();
    if canopy_domain::four_eye::emergency_reviewed(tx.effective_four_eye(ws.id).await?, approves_alone) {
        // a manager bypassed four-eye: the others and the admins review it
        let mut reviewers = tx.workspace_managers(ws.id).await?;
        reviewers.extend(tx.active_admins().await?);
        reviewers.retain(|r| r.id != by.actor.id);
        reviewers.sort_by_key(|r| r.id);
        reviewers.dedup_by_key(|r| r.id);
        let id = binding.to_string();
        let notice = canopy_domain::mail::RequestNotice {
            id: &id,
            workspace: &ws.identifier,
            project: &p.identifier,
            kind: canopy_domain::four_eye::RequestKind::Add,
            subject: &name,
            role: &role.identifier,
            expires_at: until,
            requester: &by.actor.name,
            justification: why.as_deref().unwrap_or_default(),
            approvals_required: 0,
        };
        for r in reviewers {
            if let Ok(to) = canopy_domain::Email::parse(&r.email) {
                tx.enqueue_mail(&canopy_domain::mail::emergency_granted(&to, &notice), now).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(GrantOutcome {
        user: user.username,
        workspace: ws.identifier,
        project: p.identifier,
        role: role.identifier,
        expires_at: until,
        binding,
        member_added,
    })
}

/// Revoke everything a person holds, at once (AD4): the account is
/// deactivated (its sessions end; it leaves every tenant before other
/// replication work), and every workspace membership, group membership and
/// project binding ends, in one transaction. Admins only. The answer lists
/// what was removed, and per tenant when the platform confirmed it (see also
/// `GET /api/v1/admin/emergency/revocations/{id}`).
pub async fn revoke(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    input: RevokeInput,
) -> Result<RevocationReport> {
    by.require(Action::AdministerUsers)?;
    let mut errors = Vec::new();
    let why = justification(input.justification.as_deref(), false, &mut errors);
    let mut tx = store.write().await?;
    let user = person(&mut tx, input.user.as_deref(), input.email.as_deref(), &mut errors).await?;
    let (Some(user), true) = (user, errors.is_empty()) else { return Err(Error::Invalid(errors)) };
    if !canopy_domain::authz::may_revoke_access_of(&by.actor, user.id) {
        return Err(Error::invalid("user", "you cannot revoke your own access"));
    }
    // row locks first, in the order every other path takes them (the
    // history is appended at commit, after them)
    if is_active_admin(&user) {
        keep_an_admin(&mut tx).await?;
    }
    tx.lock_user(user.id).await?;
    // pending requests the person filed, or that would give them access: they
    // end with the access (finding 14), locked before their workspaces, as
    // every decision takes them
    let requests = tx.pending_requests_touching(Some(Subject::user(user.id)), Some(user.id)).await?;
    for q in &requests {
        tx.lock_role_request(q.id).await?;
    }
    let direct: BTreeMap<Uuid, WorkspaceRole> =
        tx.direct_memberships(SubjectKind::User, user.id).await?.into_iter().collect();
    let groups = tx.groups_of_user(user.id).await?;
    let mut workspaces: BTreeSet<Uuid> = direct.keys().copied().collect();
    // each group the person leaves, with the workspaces it is a member of
    let mut group_memberships: Vec<(String, Vec<Uuid>)> = Vec::new();
    for g in &groups {
        let Some(group) = tx.group_by_id(*g).await? else { continue };
        let in_workspaces: Vec<Uuid> =
            tx.direct_memberships(SubjectKind::Group, *g).await?.into_iter().map(|(ws, _)| ws).collect();
        workspaces.extend(&in_workspaces);
        group_memberships.push((group.identifier, in_workspaces));
    }
    tx.lock_workspaces(&workspaces).await?;
    // what the person holds in tenants, before anything changes; those
    // tenants (and every project they are bound to) are replicated before
    // other work, marked now while the bindings still reach them
    let held = tx.assignments_held_by(&user.username).await?;
    tx.mark_dirty(Reach::User(user.id), PRIORITY_URGENT, now).await?;
    for tenant in held.iter().map(|h| h.tenant_id).collect::<BTreeSet<_>>() {
        tx.mark_dirty(Reach::Tenant(tenant), PRIORITY_URGENT, now).await?;
    }

    let initiator = by.initiator();
    let name = subject_string(SubjectKind::User, &user.username);
    let reason = "emergency revocation";
    let because = || Some(reason.to_owned());
    // the workspaces whose history records the revocation: those the person
    // was a member of (directly or through a group), of the requests voided
    // and of the keys deleted
    let mut concerned = BTreeSet::new();
    let mut removed = RevokedAccess {
        memberships: Vec::new(),
        groups: Vec::new(),
        bindings: Vec::new(),
        requests: Vec::new(),
        api_keys: Vec::new(),
    };
    for ws_id in &workspaces {
        let Some(ws) = tx.workspace_by_id(*ws_id).await? else { continue };
        concerned.insert(*ws_id);
        for b in tx.subject_bindings_in_workspace(*ws_id, Subject::user(user.id)).await? {
            let project = tx.project_by_id(b.binding.project_id).await?.map(|p| p.identifier).unwrap_or_default();
            tx.delete_binding(b.binding.id, now).await?;
            let event = BindingRemoved {
                binding: b.binding.id,
                project: project.clone(),
                subject: name.clone(),
                role: b.role_identifier.clone(),
                expires_at: b.binding.expires_at,
                reason: because(),
                request: None,
            };
            tx.record(Some(*ws_id), now, &initiator, event.into())?;
            removed.bindings.push(RevokedBinding {
                workspace: ws.identifier.clone(),
                project,
                role: b.role_identifier,
            });
        }
        if let Some(role) = direct.get(ws_id) {
            tx.delete_member(*ws_id, SubjectKind::User, user.id).await?;
            let event =
                MemberRemoved { subject: name.clone(), old_role: role.as_str().to_owned(), reason: reason.to_owned() };
            tx.record(Some(*ws_id), now, &initiator, event.into())?;
            removed.memberships.push(RevokedMembership { workspace: ws.identifier, role: role.as_str().to_owned() });
        }
    }
    for g in &groups {
        tx.remove_group_member(*g, user.id, now).await?;
    }
    // each group's departure, in the workspaces it is a member of and the installation's
    for (group, in_workspaces) in &group_memberships {
        let event = GroupMemberRemoved { group: group.clone(), user: user.username.clone(), reason: because() };
        for ws in in_workspaces.iter().filter(|ws| concerned.contains(*ws)) {
            tx.record(Some(*ws), now, &initiator, event.clone().into())?;
        }
        tx.record(None, now, &initiator, event.into())?;
        removed.groups.push(group.clone());
    }
    for q in &requests {
        let decision =
            Decision { state: RequestState::Void, by: &by.actor.name, reason: Some(reason), binding_id: None };
        if tx.decide_role_request(q.id, decision, now).await? {
            concerned.insert(q.workspace_id);
            tx.record(Some(q.workspace_id), now, &initiator, void_event(q, reason).into())?;
            removed.requests.push(VoidedRequest {
                id: q.id,
                workspace: q.workspace.clone(),
                project: q.project.clone(),
                subject: q.subject_string(),
                role: q.role.clone(),
                kind: q.kind.as_str().to_owned(),
            });
        }
    }
    // every key the person made goes: none works again on reactivation (finding 15)
    for k in tx.api_keys_created_by(user.id).await? {
        tx.delete_api_key(k.id).await?;
        concerned.extend(k.workspace_id);
        let event = ApiKeyDeleted { key: k.id, name: k.name.clone(), reason: because() };
        tx.record(k.workspace_id, now, &initiator, event.into())?;
        removed.api_keys.push(RevokedApiKey { id: k.id, name: k.name, workspace: k.workspace_identifier });
    }
    tx.update_user(user.id, &UserChanges { active: Some(false), ..UserChanges::default() }, now).await?;
    // SCIM may not undo it: only an admin reactivates the account
    tx.hold_scim_user(user.id, true).await?;
    tx.delete_sessions_of(user.id).await?;

    let record = RevocationRecord {
        id: Uuid::new_v4(),
        user_id: user.id,
        username: user.username.clone(),
        justification: why.clone(),
        initiator: initiator.name.clone(),
        requested_at: now,
        // stored as the history shows it (read back by the API's report)
        removed: serde_json::to_value(&removed)
            .map_err(|e| Error::Internal(format!("what an emergency revocation removed: {e}")))?,
        held,
    };
    tx.insert_emergency_revocation(&record).await?;
    let deactivated = UserDeactivated { user: user.username.clone(), reason: because(), change: None };
    let summary =
        EmergencyRevocation { revocation: record.id, user: user.username.clone(), justification: why, removed };
    for ws in concerned.into_iter().map(Some).chain([None]) {
        tx.record(ws, now, &initiator, deactivated.clone().into())?;
        tx.record(ws, now, &initiator, summary.clone().into())?;
    }
    let report = report(&mut tx, record).await?;
    tx.commit().await?;
    Ok(report)
}

/// An emergency revocation: what it removed, and per tenant when the
/// platform confirmed each removal so far (admins).
pub async fn revocation(store: &Store, by: &Principal, id: &str) -> Result<RevocationReport> {
    by.require(Action::AdministerUsers)?;
    let not_found = || Error::not_found(format!("no emergency revocation {id}"));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let mut tx = store.read().await?;
    let record = tx.emergency_revocation(id).await?.ok_or_else(not_found)?;
    report(&mut tx, record).await
}

async fn report(tx: &mut Tx, record: RevocationRecord) -> Result<RevocationReport> {
    // removals the platforms confirmed since the request, per (tenant, role)
    let confirmed = tx
        .revocations_of(&record.username)
        .await?
        .into_iter()
        .filter(|(_, _, at)| *at >= record.requested_at)
        .map(|(tenant, role, at)| ((tenant, role), at))
        .collect();
    Ok(RevocationReport { record, confirmed })
}
