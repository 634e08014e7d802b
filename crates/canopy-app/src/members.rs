//! Workspace access: invitations, members, their roles and their removal
//! (WS3–WS6). A membership's end takes the subject's project bindings in the
//! workspace with it.

use std::collections::BTreeSet;

use canopy_domain::access::{self, Cascade, Departure, Members};
use canopy_domain::authz::{Action, action_to_grant};
use canopy_domain::events::{InvitationSent, InvitationWithdrawn, MemberAdded, MemberRemoved, MemberRoleChanged};
use canopy_domain::history::Initiator;
use canopy_domain::{Binding, Email, Subject, SubjectKind, WorkspaceRole};
use canopy_store::{AccessEntry, BindingRecord, MemberRecord, SearchRecord, Store, Tx, WorkspaceRecord};
use time::OffsetDateTime;

use crate::bindings::{self, ChangeBy};
use crate::error::{Error, Result};
use crate::load::subject_string;
use crate::paging::{Page, Paging, bad_cursor, check_limit, page};
use crate::principal::Principal;

/// A member of a workspace, or an e-mail invitation waiting for its account
/// (WS5): what "Current access" lists.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// `user:NAME`, `group:IDENTIFIER` or `email:ADDRESS`.
    pub subject: String,
    /// `user`, `group` or `invitation`.
    pub kind: &'static str,
    pub name: String,
    pub display_name: String,
    pub role: WorkspaceRole,
    pub granted_by: String,
    pub granted_at: OffsetDateTime,
}

impl MemberView {
    pub fn of_member(m: MemberRecord) -> Self {
        Self {
            subject: subject_string(m.kind, &m.name),
            kind: m.kind.as_str(),
            name: m.name,
            display_name: m.display_name,
            role: m.role,
            granted_by: m.granted_by,
            granted_at: m.granted_at,
        }
    }

    pub fn of_invitation(email: String, role: WorkspaceRole, granted_by: String, granted_at: OffsetDateTime) -> Self {
        Self {
            subject: format!("email:{email}"),
            kind: "invitation",
            name: email.clone(),
            display_name: email,
            role,
            granted_by,
            granted_at,
        }
    }
}

/// Current access (WS5): one page of a workspace's members and pending
/// invitations, by subject (members of the workspace).
pub async fn list(store: &Store, by: &Principal, ws: &str, paging: &Paging) -> Result<Page<MemberView>> {
    // the cursor is the last subject shown: `KIND:NAME`
    let after = paging.after.as_deref();
    if after.is_some_and(|c| !["email:", "group:", "user:"].iter().any(|k| c.starts_with(k))) {
        return Err(bad_cursor());
    }
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewWorkspace).await?;
    let rows = tx.current_access_page(ws.id, after, paging.fetch()).await?;
    let rows: Vec<MemberView> = rows
        .into_iter()
        .map(|e| match e {
            AccessEntry::Member(m) => MemberView::of_member(m),
            AccessEntry::Invitation(i) => MemberView::of_invitation(i.email, i.role, i.invited_by, i.created_at),
        })
        .collect();
    Ok(page(rows, paging.limit, |m| m.subject.clone()))
}

/// Type-ahead over a workspace's users (first and last name, e-mail,
/// username) and groups (name, identifier) (AC9): at most `limit` matches,
/// 1 to 50 (default 10).
pub async fn search(store: &Store, by: &Principal, ws: &str, q: &str, limit: Option<u32>) -> Result<Vec<SearchRecord>> {
    let limit = check_limit(limit, 10, 50)?;
    let term = canopy_domain::SearchTerm::parse(q).map_err(|e| Error::invalid("q", e.0))?;
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewWorkspace).await?;
    Ok(tx.search_workspace(ws.id, term.as_str(), limit).await?)
}

/// Type-ahead over whom a workspace's managers may invite (WS3, WS4): every
/// active user (first and last name, e-mail, username) and group (name,
/// identifier) of the installation, at most `limit`, 1 to 50 (default 10).
pub async fn candidates(
    store: &Store,
    by: &Principal,
    ws: &str,
    q: &str,
    limit: Option<u32>,
) -> Result<Vec<SearchRecord>> {
    let limit = check_limit(limit, 10, 50)?;
    let term = canopy_domain::SearchTerm::parse(q).map_err(|e| Error::invalid("q", e.0))?;
    let mut tx = store.read().await?;
    by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    Ok(tx.search_directory(term.as_str(), limit).await?)
}

/// Whom to invite (WS3, WS4).
#[derive(Debug, Clone)]
pub enum Invitee {
    /// A username.
    User(String),
    /// An e-mail address: an account's, or a pending invitation.
    Email(String),
    /// A group identifier.
    Group(String),
}

/// A member named in a path: `user:NAME`, `group:IDENTIFIER` or `email:ADDRESS`.
enum MemberRef {
    Subject(Subject, String),
    Invitation(String),
}

async fn resolve_member(tx: &mut Tx, raw: &str) -> Result<MemberRef> {
    let not_found =
        || Error::not_found(format!("no member {raw:?}; name members as user:NAME, group:IDENTIFIER or email:ADDRESS"));
    let (kind, name) = raw.split_once(':').ok_or_else(not_found)?;
    match kind {
        "user" => {
            let u = tx.user_by_username(name).await?.ok_or_else(not_found)?;
            Ok(MemberRef::Subject(Subject::user(u.id), raw.to_owned()))
        }
        "group" => {
            let g = tx.group_by_identifier(name).await?.ok_or_else(not_found)?;
            Ok(MemberRef::Subject(Subject::group(g.id), raw.to_owned()))
        }
        "email" => Ok(MemberRef::Invitation(Email::parse(name).map_err(|_| not_found())?.into_string())),
        _ => Err(not_found()),
    }
}

/// Refuse to leave a workspace without a user as direct owner. (Owning
/// groups do not count, since they may be empty, so changing one is never
/// refused by this rule.)
async fn keep_an_owner(
    tx: &mut Tx,
    ws: &WorkspaceRecord,
    subject: Subject,
    old: WorkspaceRole,
    new: Option<WorkspaceRole>,
) -> Result<()> {
    if canopy_domain::roles::needs_another_owner(subject.kind, old, new) {
        tx.lock_workspace(ws.id).await?;
        if tx.count_owners(ws.id).await? <= 1 {
            return Err(Error::conflict(format!("workspace {} must keep at least one owner", ws.identifier)));
        }
    }
    Ok(())
}

/// Invite a user, an e-mail address or a group with a workspace role (WS3, WS4).
///
/// An e-mail address that no account has becomes a pending invitation, which
/// turns into membership when an account with that address first signs in.
pub async fn invite(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    ws: &str,
    (invitee, role): (Invitee, WorkspaceRole),
    public_url: Option<&str>,
) -> Result<MemberView> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, action_to_grant(role)).await?;
    let granted_by = by.actor.name.clone();
    let initiator = by.initiator();

    // Resolve the invited subject; an e-mail of a known account invites that account.
    let mut subject = None;
    let field = match &invitee {
        Invitee::User(_) => "user",
        Invitee::Email(_) => "email",
        Invitee::Group(_) => "group",
    };
    if let Invitee::User(username) = &invitee {
        let u = tx
            .user_by_username(username)
            .await?
            .ok_or_else(|| Error::invalid("user", format!("user {username:?} does not exist")))?;
        if !u.active {
            return Err(Error::invalid("user", format!("the account of {username} is deactivated")));
        }
        subject = Some((SubjectKind::User, u.id, u.username.clone(), u.display_name()));
    } else if let Invitee::Group(group) = &invitee {
        let g = tx
            .group_by_identifier(group)
            .await?
            .ok_or_else(|| Error::invalid("group", format!("group {group:?} does not exist")))?;
        subject = Some((SubjectKind::Group, g.id, g.identifier, g.display_name));
    } else if let Invitee::Email(raw) = &invitee {
        let email = Email::parse(raw).map_err(|e| Error::invalid("email", e.to_string()))?;
        match tx.user_by_email(email.as_str()).await? {
            Some(u) if !u.active => {
                return Err(Error::invalid("email", format!("the account with the address {email} is deactivated")));
            }
            Some(u) => subject = Some((SubjectKind::User, u.id, u.username.clone(), u.display_name())),
            None => {
                if tx.invitation(ws.id, email.as_str()).await?.is_some() {
                    return Err(Error::conflict_on(
                        "email",
                        format!("{email} is already invited to {}", ws.identifier),
                    ));
                }
                tx.insert_invitation(ws.id, email.as_str(), role, &granted_by, now).await?;
                let announcement = canopy_domain::mail::invitation(
                    &email,
                    &ws.identifier,
                    &ws.display_name,
                    role,
                    &granted_by,
                    public_url,
                );
                tx.enqueue_mail(&announcement, now).await?;
                let sent = InvitationSent { email: email.as_str().to_owned(), role: role.as_str().to_owned() };
                tx.record(Some(ws.id), now, &initiator, sent.into())?;
                tx.commit().await?;
                return Ok(MemberView::of_invitation(email.into_string(), role, granted_by, now));
            }
        }
    }
    let Some((kind, id, name, display_name)) = subject else {
        return Err(Error::internal("an invitee resolved to nothing"));
    };
    if tx.member_role(ws.id, kind, id).await?.is_some() {
        return Err(Error::conflict_on(
            field,
            format!(
                "{} is already a member of {}; change the role instead",
                subject_string(kind, &name),
                ws.identifier
            ),
        ));
    }
    tx.upsert_member(ws.id, kind, id, role, &granted_by, now).await?;
    let added = MemberAdded { subject: subject_string(kind, &name), role: role.as_str().to_owned(), emergency: false };
    tx.record(Some(ws.id), now, &initiator, added.into())?;
    tx.commit().await?;
    Ok(MemberView {
        subject: subject_string(kind, &name),
        kind: kind.as_str(),
        name,
        display_name,
        role,
        granted_by,
        granted_at: now,
    })
}

/// Change the workspace role of a member or of a pending invitation (WS6).
pub async fn change_role(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (ws, subject): (&str, &str),
    role: WorkspaceRole,
) -> Result<MemberView> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let not_member = || Error::not_found(format!("{subject} is not a member of {}", ws.identifier));
    match resolve_member(&mut tx, subject).await? {
        MemberRef::Subject(s, name) => {
            let old = tx.member_role(ws.id, s.kind, s.id).await?.ok_or_else(not_member)?;
            by.require_in(&mut tx, &ws, action_to_grant(old.max(role))).await?;
            keep_an_owner(&mut tx, &ws, s, old, Some(role)).await?;
            tx.upsert_member(ws.id, s.kind, s.id, role, &by.actor.name, now).await?;
            let changed = MemberRoleChanged {
                subject: name,
                old_role: old.as_str().to_owned(),
                new_role: role.as_str().to_owned(),
            };
            tx.record(Some(ws.id), now, &by.initiator(), changed.into())?;
            let m = tx
                .workspace_members(ws.id)
                .await?
                .into_iter()
                .find(|m| m.subject_id == s.id && m.kind == s.kind)
                .ok_or_else(not_member)?;
            tx.commit().await?;
            Ok(MemberView::of_member(m))
        }
        MemberRef::Invitation(email) => {
            let inv = tx.invitation(ws.id, &email).await?.ok_or_else(not_member)?;
            by.require_in(&mut tx, &ws, action_to_grant(inv.role.max(role))).await?;
            tx.delete_invitation(inv.id).await?;
            tx.insert_invitation(ws.id, &email, role, &by.actor.name, now).await?;
            let changed = MemberRoleChanged {
                subject: format!("email:{email}"),
                old_role: inv.role.as_str().to_owned(),
                new_role: role.as_str().to_owned(),
            };
            tx.record(Some(ws.id), now, &by.initiator(), changed.into())?;
            tx.commit().await?;
            Ok(MemberView::of_invitation(email, role, by.actor.name.clone(), now))
        }
    }
}

/// Remove a member (or withdraw an invitation). The subject's project
/// bindings in this workspace end with the membership (WS6).
pub async fn remove(store: &Store, by: &Principal, now: OffsetDateTime, (ws, subject): (&str, &str)) -> Result<()> {
    let mut tx = store.write().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    let not_member = || Error::not_found(format!("{subject} is not a member of {}", ws.identifier));
    let initiator = by.initiator();
    match resolve_member(&mut tx, subject).await? {
        MemberRef::Subject(s, name) => {
            let old = tx.member_role(ws.id, s.kind, s.id).await?.ok_or_else(not_member)?;
            by.require_in(&mut tx, &ws, action_to_grant(old)).await?;
            keep_an_owner(&mut tx, &ws, s, old, None).await?;
            let removal = Removal { initiator: &initiator, reason: "removed from workspace", now };
            end_membership(&mut tx, ws.id, s, &name, old, &removal).await?;
        }
        MemberRef::Invitation(email) => {
            let inv = tx.invitation(ws.id, &email).await?.ok_or_else(not_member)?;
            by.require_in(&mut tx, &ws, action_to_grant(inv.role)).await?;
            tx.delete_invitation(inv.id).await?;
            let withdrawn = InvitationWithdrawn { email, role: inv.role.as_str().to_owned() };
            tx.record(Some(ws.id), now, &initiator, withdrawn.into())?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Who ends a membership, why, and when.
pub struct Removal<'a> {
    pub initiator: &'a Initiator,
    pub reason: &'a str,
    pub now: time::OffsetDateTime,
}

/// End a subject's membership of a workspace and, with it, its project
/// bindings there (WS6), recording each in the workspace's history.
///
/// Which bindings end is `access::departure_ends`'s to say: removing a
/// person ends their bindings in the workspace even when a group keeps them
/// a member (the removal states the intent to take their access away);
/// removing a group ends its bindings and those of its members who are no
/// longer members at all. The workspace row is locked first, so that
/// concurrent membership changes see each other (see
/// [`end_bindings_of_non_members`]).
pub async fn end_membership(
    tx: &mut Tx,
    workspace_id: uuid::Uuid,
    subject: Subject,
    name: &str,
    old_role: WorkspaceRole,
    removal: &Removal<'_>,
) -> Result<()> {
    let Removal { initiator, reason, now } = *removal;
    tx.lock_workspace(workspace_id).await?;
    // the bindings the departure may end: the subject's, and a group's users'
    let users: Vec<uuid::Uuid> = match subject.kind {
        SubjectKind::User => Vec::new(),
        SubjectKind::Group => tx.group_members(subject.id).await?.into_iter().map(|u| u.id).collect(),
    };
    let mut held = tx.subject_bindings_in_workspace(workspace_id, subject).await?;
    for &user in &users {
        held.extend(tx.subject_bindings_in_workspace(workspace_id, Subject::user(user)).await?);
    }
    tx.delete_member(workspace_id, subject.kind, subject.id).await?;
    let departure = match subject.kind {
        SubjectKind::User => Departure::User(subject.id),
        SubjectKind::Group => Departure::Group { group: subject.id, users: &users },
    };
    let ends = departure_ends(tx, workspace_id, departure, &held).await?;
    let end = Ending { workspace_id, held: &held, ends: &ends, removal };
    end.bindings(tx, Cascade::HolderRemoved, reason).await?;
    let removed =
        MemberRemoved { subject: name.to_owned(), old_role: old_role.as_str().to_owned(), reason: reason.to_owned() };
    tx.record(Some(workspace_id), now, initiator, removed.into())?;
    // members who belonged only through this group leave with it
    end.bindings(tx, Cascade::NoLongerMember, &no_longer_a_member(reason)).await?;
    Ok(())
}

/// End the direct project bindings in a workspace of those `users` who are
/// no longer its members, neither directly nor through a group (WS6: access
/// leaves with the person), after they left a group.
pub async fn end_bindings_of_non_members(
    tx: &mut Tx,
    workspace_id: uuid::Uuid,
    users: &[uuid::Uuid],
    removal: &Removal<'_>,
) -> Result<()> {
    // Lock the workspace before deciding who is still a member: a concurrent
    // change of membership (a group leaving, a user leaving a group) waits,
    // then sees this one, so one of the two always ends the binding.
    tx.lock_workspace(workspace_id).await?;
    let mut held = Vec::new();
    for &user in users {
        held.extend(tx.subject_bindings_in_workspace(workspace_id, Subject::user(user)).await?);
    }
    let ends = departure_ends(tx, workspace_id, Departure::FromGroup(users), &held).await?;
    let end = Ending { workspace_id, held: &held, ends: &ends, removal };
    end.bindings(tx, Cascade::NoLongerMember, &no_longer_a_member(removal.reason)).await
}

fn no_longer_a_member(reason: &str) -> String {
    format!("no longer a member of the workspace ({reason})")
}

/// Ask the domain which of `held` (bindings of the workspace) `departure`
/// ends, given who is a member of the workspace now.
async fn departure_ends(
    tx: &mut Tx,
    workspace_id: uuid::Uuid,
    departure: Departure<'_>,
    held: &[BindingRecord],
) -> Result<Vec<(uuid::Uuid, Cascade)>> {
    let (mut users, mut groups) = (BTreeSet::new(), BTreeSet::new());
    for m in tx.workspace_members(workspace_id).await? {
        match m.kind {
            SubjectKind::User => users.insert(m.subject_id),
            SubjectKind::Group => groups.insert(m.subject_id),
        };
    }
    let members = Members { users, groups: tx.group_memberships(&groups).await? };
    let bindings: Vec<Binding> = held.iter().map(|b| b.binding.clone()).collect();
    Ok(access::departure_ends(departure, &bindings, &members))
}

/// The bindings a departure ends, and by whom.
struct Ending<'a> {
    workspace_id: uuid::Uuid,
    held: &'a [BindingRecord],
    ends: &'a [(uuid::Uuid, Cascade)],
    removal: &'a Removal<'a>,
}

impl Ending<'_> {
    /// End those that end for `cause`, each with `binding_removed` for `reason`.
    async fn bindings(&self, tx: &mut Tx, cause: Cascade, reason: &str) -> Result<()> {
        let ending: Vec<&BindingRecord> = self
            .held
            .iter()
            .filter(|b| self.ends.iter().any(|(id, why)| *id == b.binding.id && *why == cause))
            .collect();
        if ending.is_empty() {
            return Ok(());
        }
        let ws_name = tx.workspace_by_id(self.workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
        let initiator = self.removal.initiator;
        let by = ChangeBy { initiator: initiator.clone(), name: &initiator.name, request: None };
        for b in ending {
            let project = tx.project_by_id(b.binding.project_id).await?.map(|p| p.identifier).unwrap_or_default();
            bindings::end(tx, (self.workspace_id, &ws_name, &project), b, &by, Some(reason), self.removal.now).await?;
        }
        Ok(())
    }
}
