//! Groups of users (ID2): created, renamed and deleted by admins, and their
//! members, who gain and lose what the group holds (AC3).

use canopy_domain::authz::Action;
use canopy_domain::events::{
    Event, GroupCreated, GroupDeleted, GroupMemberAdded, GroupMemberRemoved, GroupUpdated, Named,
};
use canopy_domain::{DisplayName, Identifier, Subject, SubjectKind};
use canopy_store::{GroupRecord, Store, Tx, UserRecord};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::load;
use crate::members::{Removal, end_bindings_of_non_members, end_membership};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;
use crate::requests::close_pending;

pub async fn load_group(tx: &mut Tx, identifier: &str) -> Result<GroupRecord> {
    tx.group_by_identifier(identifier)
        .await?
        .ok_or_else(|| Error::not_found(format!("group {identifier:?} does not exist")))
}

/// The group `identifier` names, to be changed by an admin: refused when an
/// identity provider provisioned it (ID2), since the provider owns it and
/// would undo the change at its next synchronisation.
async fn load_owned_group(tx: &mut Tx, identifier: &str) -> Result<GroupRecord> {
    let g = load_group(tx, identifier).await?;
    if g.provisioned {
        return Err(Error::conflict(format!(
            "group {} is provisioned by the identity provider (SCIM), which owns its name and members: \
             change them there",
            g.identifier
        )));
    }
    Ok(g)
}

/// Groups by identifier: every signed-in principal reads them, to invite
/// and bind groups.
pub async fn list(store: &Store, _by: &Principal, paging: &Paging) -> Result<Page<GroupRecord>> {
    let mut tx = store.read().await?;
    let rows = tx.list_groups(paging.after.as_deref(), paging.limit).await?;
    Ok(page(rows, paging.limit, |g| g.identifier.clone()))
}

/// One group (every signed-in principal).
pub async fn show(store: &Store, _by: &Principal, group: &str) -> Result<GroupRecord> {
    let mut tx = store.read().await?;
    load_group(&mut tx, group).await
}

/// A page of a group's members by username, and whether the principal may
/// see their e-mail addresses (admins; managers of a workspace the group
/// belongs to see the members without them).
pub async fn members(store: &Store, by: &Principal, group: &str, paging: &Paging) -> Result<(Page<UserRecord>, bool)> {
    let mut tx = store.read().await?;
    let g = load_group(&mut tx, group).await?;
    let with_email = require_view_members(&mut tx, by, &g).await?;
    let rows = tx.group_members_page(g.id, paging.after.as_deref(), paging.fetch()).await?;
    Ok((page(rows, paging.limit, |u| u.username.clone()), with_email))
}

/// Group membership changes are recorded in the installation history and in
/// every workspace where the group is a member, since they change access there (AC3).
async fn record_group_event(
    tx: &mut Tx,
    by: &Principal,
    group: &GroupRecord,
    event: Event,
    now: OffsetDateTime,
) -> Result<()> {
    for (ws, _) in tx.direct_memberships(SubjectKind::Group, group.id).await? {
        tx.record(Some(ws), now, &by.initiator(), event.clone())?;
    }
    tx.record(None, now, &by.initiator(), event)?;
    Ok(())
}

/// Create a group (admins).
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (identifier, display_name): (&str, &str),
) -> Result<GroupRecord> {
    by.require(Action::AdministerGroups)?;
    crate::validate! {
        identifier: "identifier" => Identifier::parse(identifier),
        display_name: "display_name" => DisplayName::parse(display_name),
    }
    let mut tx = store.write().await?;
    if tx.group_by_identifier(identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on("identifier", format!("group {identifier} already exists")));
    }
    let g = tx.insert_group(identifier.as_str(), display_name.as_str(), now).await?;
    let created = GroupCreated { group: g.identifier.clone(), display_name: g.display_name.clone() };
    tx.record(None, now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(g)
}

/// Rename a group (admins).
pub async fn rename(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    group: &str,
    display_name: Option<&str>,
) -> Result<GroupRecord> {
    by.require(Action::AdministerGroups)?;
    crate::validate! { display_name: "display_name" => display_name.map(DisplayName::parse).transpose() }
    let mut tx = store.write().await?;
    let before = load_owned_group(&mut tx, group).await?;
    if let Some(name) = display_name {
        rename_in(&mut tx, by, &before, name, now).await?;
    }
    let after = load_group(&mut tx, group).await?;
    tx.commit().await?;
    Ok(after)
}

/// Give a group another display name, recorded.
pub(crate) async fn rename_in(
    tx: &mut Tx,
    by: &Principal,
    before: &GroupRecord,
    name: DisplayName,
    now: OffsetDateTime,
) -> Result<()> {
    tx.rename_group(before.id, name.as_str()).await?;
    let updated = GroupUpdated {
        group: before.identifier.clone(),
        old: Named { display_name: before.display_name.clone() },
        new: Named { display_name: name.into_string() },
    };
    tx.record(None, now, &by.initiator(), updated.into())?;
    Ok(())
}

/// Delete a group (admins). Its memberships and bindings end with it.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, group: &str) -> Result<()> {
    by.require(Action::AdministerGroups)?;
    let mut tx = store.write().await?;
    let g = load_owned_group(&mut tx, group).await?;
    delete_in(&mut tx, by, &g, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Delete a group, recorded: its memberships and bindings end, requests
/// naming it close.
pub(crate) async fn delete_in(tx: &mut Tx, by: &Principal, g: &GroupRecord, now: OffsetDateTime) -> Result<()> {
    // requests naming the group close, saying why (finding 17)
    let memberships = tx.direct_memberships(SubjectKind::Group, g.id).await?;
    let also = memberships.iter().map(|(ws, _)| *ws);
    close_pending(tx, Subject::group(g.id), None, also, by, "its group was deleted", now).await?;
    let name = format!("group:{}", g.identifier);
    let initiator = by.initiator();
    let removal = Removal { initiator: &initiator, reason: "group deleted", now };
    let deleted = GroupDeleted { group: g.identifier.clone() };
    for (ws, role) in memberships {
        end_membership(tx, ws, Subject::group(g.id), &name, role, &removal).await?;
        tx.record(Some(ws), now, &initiator, deleted.clone().into())?;
    }
    tx.record(None, now, &initiator, deleted.into())?;
    tx.delete_group(g.id, now).await?;
    Ok(())
}

/// Refuse unless the caller may see the group's members
/// (`Action::ViewGroupMembers`: admins, or managers of a workspace the group
/// is a member of): who the group gives access to is for those who decide
/// what it may access. True when the caller administers groups (and so sees
/// the members' e-mail addresses too).
pub async fn require_view_members(tx: &mut Tx, by: &Principal, g: &GroupRecord) -> Result<bool> {
    let admin = by.require(Action::AdministerGroups).is_ok();
    // asked once without a workspace, then once per workspace the group is in
    if by.require(Action::ViewGroupMembers).is_ok() {
        return Ok(admin);
    }
    for (ws_id, _) in tx.direct_memberships(SubjectKind::Group, g.id).await? {
        if let Some(ws) = tx.workspace_by_id(ws_id).await?
            && by.require_in(tx, &ws, Action::ViewGroupMembers).await.is_ok()
        {
            return Ok(admin);
        }
    }
    Err(Error::Forbidden(format!(
        "the members of group {} are shown to admins and to managers of a workspace it belongs to",
        g.identifier
    )))
}

/// Add a user to a group (admins). They gain every role the group holds (AC3, WS4).
pub async fn add_member(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (group, username): (&str, &str),
) -> Result<UserRecord> {
    by.require(Action::AdministerGroups)?;
    let mut tx = store.write().await?;
    let g = load_owned_group(&mut tx, group).await?;
    let user = tx
        .user_by_username(username)
        .await?
        .ok_or_else(|| Error::invalid("user", format!("user {username:?} does not exist")))?;
    if tx.is_group_member(g.id, user.id).await? {
        return Err(Error::conflict_on("user", format!("{} is already a member of {}", user.username, g.identifier)));
    }
    add_member_in(&mut tx, by, &g, &user, now).await?;
    tx.commit().await?;
    Ok(user)
}

/// Add a user who is not a member yet, recorded where the group holds access.
pub(crate) async fn add_member_in(
    tx: &mut Tx,
    by: &Principal,
    g: &GroupRecord,
    user: &UserRecord,
    now: OffsetDateTime,
) -> Result<()> {
    tx.add_group_member(g.id, user.id, now).await?;
    let added = GroupMemberAdded { group: g.identifier.clone(), user: user.username.clone() };
    record_group_event(tx, by, g, added.into(), now).await
}

/// Remove a user from a group (admins). They lose what the group gave them (AC3).
pub async fn remove_member(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (group, username): (&str, &str),
) -> Result<()> {
    by.require(Action::AdministerGroups)?;
    let mut tx = store.write().await?;
    let g = load_owned_group(&mut tx, group).await?;
    let user = load::user(&mut tx, username).await?;
    if !tx.is_group_member(g.id, user.id).await? {
        return Err(Error::not_found(format!("{username} is not a member of group {group}")));
    }
    remove_member_in(&mut tx, by, &g, &user, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Remove a member, recorded: they lose what the group gave them (AC3).
pub(crate) async fn remove_member_in(
    tx: &mut Tx,
    by: &Principal,
    g: &GroupRecord,
    user: &UserRecord,
    now: OffsetDateTime,
) -> Result<()> {
    tx.remove_group_member(g.id, user.id, now).await?;
    let initiator = by.initiator();
    let removal = Removal { initiator: &initiator, reason: "left a member group", now };
    for (ws, _) in tx.direct_memberships(SubjectKind::Group, g.id).await? {
        end_bindings_of_non_members(tx, ws, &[user.id], &removal).await?;
    }
    let removed = GroupMemberRemoved { group: g.identifier.clone(), user: user.username.clone(), reason: None };
    record_group_event(tx, by, g, removed.into(), now).await
}
