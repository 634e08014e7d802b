//! Users: local accounts, their installation roles, deactivation (AC10) and
//! deletion, and ending their sessions (SE6).

use std::collections::BTreeSet;
use std::net::IpAddr;

use canopy_domain::authz::Action;
use canopy_domain::events::{
    Event, SessionsEnded, UserChange, UserCreated, UserDeactivated, UserDeleted, UserProfile, UserReactivated,
    UserUpdated,
};
use canopy_domain::names::check_password;
use canopy_domain::signin;
use canopy_domain::{Email, InstallationRole, InvalidValue, PersonName, Subject, SubjectKind, Username};
use canopy_store::{NewUser, Store, Tx, UserChanges, UserRecord};
use time::OffsetDateTime;

use crate::credentials::{Admission, PasswordHashing, hash_password_admitted, verify_password};
use crate::error::{Error, Result};
use crate::load;
use crate::members::{Removal, end_membership};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;
use crate::requests::close_pending;
use crate::session::{count_attempt, count_success};

/// A local account to create (admins).
#[derive(Debug, Clone)]
pub struct NewUserInput {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// None: an account without a local password (it signs in otherwise).
    pub password: Option<String>,
    pub installation_roles: Vec<String>,
}

/// A change of an account as given; `None` keeps what it has. The fields
/// are checked after authorisation, so a caller who may not change the
/// account learns nothing else.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password: Option<String>,
    /// The account's password now, which a self-service password change needs (SE6).
    pub current_password: Option<String>,
    pub active: Option<bool>,
    pub installation_roles: Option<Vec<String>>,
}

fn parse_roles(raw: &[String]) -> Result<BTreeSet<InstallationRole>, InvalidValue> {
    raw.iter()
        .map(|r| match r.parse::<InstallationRole>()? {
            role if role.for_people() => Ok(role),
            role => Err(InvalidValue(format!("{} is a role of API keys only", role.as_str()))),
        })
        .collect()
}

/// Refuse unless the principal may act on the account named `username`
/// (`Action::ActOnAccount`: the person themself, or admins); an unknown
/// name is refused alike to non-admins, so they cannot probe for accounts.
async fn require_account(tx: &mut Tx, by: &Principal, username: &str) -> Result<()> {
    let user = tx.user_by_username(username).await?.map(|u| u.id);
    by.require(Action::ActOnAccount { user })
}

/// One page of users by username, those matching `q` (username, e-mail,
/// first or last name) where given (admins).
pub async fn list(store: &Store, by: &Principal, q: Option<&str>, paging: &Paging) -> Result<Page<UserRecord>> {
    by.require(Action::AdministerUsers)?;
    let term = match q.filter(|s| !s.trim().is_empty()) {
        Some(raw) => Some(canopy_domain::SearchTerm::parse(raw).map_err(|e| Error::invalid("q", e.0))?),
        None => None,
    };
    let mut tx = store.read().await?;
    let rows = tx.list_users(term.as_ref().map(|t| t.as_str()), paging.after.as_deref(), paging.limit).await?;
    Ok(page(rows, paging.limit, |u| u.username.clone()))
}

/// Show an account (the person themself, or admins).
pub async fn show(store: &Store, by: &Principal, username: &str) -> Result<UserRecord> {
    let mut tx = store.read().await?;
    require_account(&mut tx, by, username).await?;
    load::user(&mut tx, username).await
}

/// Where an account comes from and how it signs in besides a password.
#[derive(Debug, Clone)]
pub struct IdentityProviders {
    /// The issuers it signs in through.
    pub issuers: Vec<String>,
    /// Provisioned through SCIM: the identity provider owns its names and address.
    pub provisioned: bool,
}

/// The identity providers an account signs in through, and whether one
/// provisioned it (admins).
pub async fn identity_providers(store: &Store, by: &Principal, username: &str) -> Result<IdentityProviders> {
    by.require(Action::AdministerUsers)?;
    let mut tx = store.read().await?;
    let user = load::user(&mut tx, username).await?;
    Ok(IdentityProviders { issuers: tx.identity_issuers(user.id).await?, provisioned: tx.is_scim_user(user.id).await? })
}

pub fn is_active_admin(u: &UserRecord) -> bool {
    u.active && u.installation_roles.contains(&InstallationRole::Admin)
}

/// Refuse a change that would leave the installation without an active admin
/// (also when made through an admin's own API key).
pub async fn keep_an_admin(tx: &mut Tx) -> Result<()> {
    // lock every admin's row first, so two admins removing each other wait in turn
    tx.lock_admins().await?;
    if tx.count_active_admins().await? <= 1 {
        return Err(Error::conflict("the installation must keep at least one active admin"));
    }
    Ok(())
}

/// Create a local account (admins).
pub async fn create(
    store: &Store,
    hashing: &PasswordHashing,
    by: &Principal,
    now: OffsetDateTime,
    input: NewUserInput,
) -> Result<UserRecord> {
    by.require(Action::AdministerUsers)?;
    let password = input.password;
    crate::validate! {
        username: "username" => Username::parse(&input.username),
        email: "email" => Email::parse(&input.email),
        first_name: "first_name" => PersonName::parse(&input.first_name),
        last_name: "last_name" => PersonName::parse(&input.last_name),
        _password: "password" => password.as_deref().map(check_password).transpose(),
        roles: "installation_roles" => parse_roles(&input.installation_roles),
    }
    let hash = match password {
        Some(p) => Some(hashing.hash(p).await?),
        None => None,
    };
    let mut tx = store.write().await?;
    if tx.user_by_username(username.as_str()).await?.is_some() {
        return Err(Error::conflict_on("username", format!("user {username} already exists")));
    }
    if tx.user_by_email(email.as_str()).await?.is_some() {
        return Err(Error::conflict_on("email", format!("another user has the e-mail address {email}")));
    }
    let user = tx
        .insert_user(
            NewUser {
                username: username.as_str(),
                email: email.as_str(),
                first_name: first_name.as_str(),
                last_name: last_name.as_str(),
                password_hash: hash.as_deref(),
                installation_roles: &roles,
            },
            now,
        )
        .await?;
    let created = UserCreated {
        user: user.username.clone(),
        email: user.email.clone(),
        installation_roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
    };
    tx.record(None, now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(user)
}

/// Change a user. Admins change anything; users change their own names and
/// password, giving the current one (`current_password`, SE6; wrong guesses
/// are throttled like sign-ins). A new password ends every session of the
/// account. `{"active": false}` deactivates: the account loses all access
/// at once and its sessions end (AC10).
pub async fn update(
    store: &Store,
    hashing: &PasswordHashing,
    by: &Principal,
    (now, client): (OffsetDateTime, IpAddr),
    username: &str,
    input: UserUpdate,
) -> Result<UserRecord> {
    let is_self = by.actor.is_user() && by.actor.name == username;
    let admin_fields = input.email.is_some() || input.active.is_some() || input.installation_roles.is_some();
    if admin_fields {
        by.require(Action::AdministerUsers)?;
    } else {
        require_account(&mut store.read().await?, by, username).await?;
    }
    let UserUpdate { email, first_name, last_name, password, current_password, active, installation_roles } = input;
    crate::validate! {
        email: "email" => email.as_deref().map(Email::parse).transpose(),
        first_name: "first_name" => first_name.as_deref().map(PersonName::parse).transpose(),
        last_name: "last_name" => last_name.as_deref().map(PersonName::parse).transpose(),
        _password: "password" => password.as_deref().map(check_password).transpose(),
        roles: "installation_roles" => installation_roles.as_deref().map(parse_roles).transpose(),
    }
    if is_self && active == Some(false) {
        return Err(Error::invalid("active", "you cannot deactivate your own account"));
    }
    if is_self && roles.as_ref().is_some_and(|r| !r.contains(&InstallationRole::Admin)) {
        return Err(Error::invalid("installation_roles", "you cannot take the admin role from yourself"));
    }
    if current_password.is_some() && password.is_none() {
        return Err(Error::invalid("current_password", "is only for changing the password"));
    }
    let password_hash = match password {
        Some(p) => {
            let mut admission = hashing.admit().await?;
            if is_self {
                admission = check_current_password(store, admission, client, username, current_password, now).await?;
            }
            Some(hash_password_admitted(admission, p).await?)
        }
        None => None,
    };
    let mut tx = store.write().await?;
    let before = load::user(&mut tx, username).await?;
    if let Some(e) = &email
        && let Some(other) = tx.user_by_email(e.as_str()).await?
        && other.id != before.id
    {
        return Err(Error::conflict_on("email", format!("another user has the e-mail address {e}")));
    }
    let changes = UserChanges {
        email: email.map(Email::into_string),
        first_name: first_name.map(PersonName::into_string),
        last_name: last_name.map(PersonName::into_string),
        password_hash,
        active,
        installation_roles: roles,
    };
    let owned_changed = changes.email.as_ref().is_some_and(|e| *e != before.email)
        || changes.first_name.as_ref().is_some_and(|n| *n != before.first_name)
        || changes.last_name.as_ref().is_some_and(|n| *n != before.last_name);
    if owned_changed && tx.is_scim_user(before.id).await? {
        return Err(Error::conflict(format!(
            "the account {} is provisioned by the identity provider (SCIM), which owns its names and e-mail \
             address: change them there",
            before.username
        )));
    }
    let after = change(&mut tx, by, &before, changes, now, None).await?;
    tx.commit().await?;
    Ok(after)
}

/// Apply `changes` to the account `before`, recorded: a deactivation ends
/// its sessions and its access everywhere (AC10), with `reason` if given;
/// refused when it would leave no active admin. Every way an account
/// changes (an admin, the person, SCIM) goes through here.
pub(crate) async fn change(
    tx: &mut Tx,
    by: &Principal,
    before: &UserRecord,
    changes: UserChanges,
    now: OffsetDateTime,
    reason: Option<&str>,
) -> Result<UserRecord> {
    let stays_admin = changes.active.unwrap_or(before.active)
        && changes.installation_roles.as_ref().unwrap_or(&before.installation_roles).contains(&InstallationRole::Admin);
    if is_active_admin(before) && !stays_admin {
        keep_an_admin(tx).await?;
    }
    tx.update_user(before.id, &changes, now).await?;
    // a provisioned account an admin deactivates is theirs to reactivate, not
    // the identity provider's: its next synchronisation must not undo it
    if let Some(active) = changes.active
        && !by.actor.scim_only()
    {
        tx.hold_scim_user(before.id, !active).await?;
    }
    let after = tx.user_by_id(before.id).await?.ok_or_else(|| Error::not_found("the account is gone"))?;
    let initiator = by.initiator();
    if changes.password_hash.is_some() || !after.active {
        tx.delete_sessions_of(after.id).await?;
    }
    let change =
        UserChange { old: profile(before), new: profile(&after), password_changed: changes.password_hash.is_some() };
    let user = after.username.clone();
    let reason = reason.map(str::to_owned);
    // the installation chain's event, and what each workspace where the
    // person is a member sees: that their access ended or resumed
    let (event, in_workspaces): (Event, Option<Event>) = match (before.active, after.active) {
        (true, false) => (
            UserDeactivated { user: user.clone(), reason: reason.clone(), change: Some(change) }.into(),
            Some(UserDeactivated { user, reason, change: None }.into()),
        ),
        (false, true) => (
            UserReactivated { user: user.clone(), change: Some(change) }.into(),
            Some(UserReactivated { user, change: None }.into()),
        ),
        _ => (UserUpdated { user, change }.into(), None),
    };
    if let Some(seen) = in_workspaces {
        for (ws, _) in tx.direct_memberships(SubjectKind::User, after.id).await? {
            tx.record(Some(ws), now, &initiator, seen.clone())?;
        }
    }
    tx.record(None, now, &initiator, event)?;
    Ok(after)
}

/// An account as the history shows it before and after a change.
fn profile(u: &UserRecord) -> UserProfile {
    UserProfile {
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        active: u.active,
        installation_roles: u.installation_roles.iter().map(|r| r.as_str().to_owned()).collect(),
    }
}

/// Delete a user (admins). Their memberships and bindings end with the account.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, username: &str) -> Result<()> {
    by.require(Action::AdministerUsers)?;
    if by.actor.is_user() && by.actor.name == username {
        return Err(Error::invalid("user", "you cannot delete your own account"));
    }
    let mut tx = store.write().await?;
    let user = load::user(&mut tx, username).await?;
    // the admins' rows before any one user's, in the order every other path takes them
    if is_active_admin(&user) {
        keep_an_admin(&mut tx).await?;
    }
    tx.lock_user(user.id).await?;
    // requests naming the person or filed by them close, saying why (finding 17)
    let memberships = tx.direct_memberships(SubjectKind::User, user.id).await?;
    let why = "the account of its subject or requester was deleted";
    let also = memberships.iter().map(|(ws, _)| *ws);
    close_pending(&mut tx, Subject::user(user.id), Some(user.id), also, by, why, now).await?;
    let initiator = by.initiator();
    let name = format!("user:{}", user.username);
    for (ws, role) in memberships {
        let subject = Subject::user(user.id);
        let removal = Removal { initiator: &initiator, reason: "account deleted", now };
        end_membership(&mut tx, ws, subject, &name, role, &removal).await?;
    }
    tx.delete_user(user.id, now).await?;
    tx.record(None, now, &initiator, UserDeleted { user: user.username, email: user.email }.into())?;
    tx.commit().await?;
    Ok(())
}

/// Refuse a self-service password change unless `current` is the account's
/// password now (SE6). The attempt is counted and throttled exactly like a
/// sign-in of the account from this address, so a stolen session cannot
/// guess it faster than a guesser at the sign-in form. The admission comes
/// back for hashing the new password.
async fn check_current_password(
    store: &Store,
    admission: Admission,
    client: std::net::IpAddr,
    username: &str,
    current: Option<String>,
    now: time::OffsetDateTime,
) -> Result<Admission> {
    let Some(current) = current else {
        return Err(Error::invalid("current_password", "is required to change your own password"));
    };
    let keys = signin::keys(username, client);
    let user = count_attempt(store, &keys, username, now).await?;
    let hash = user.and_then(|u| u.password_hash);
    let (ok, admission) = verify_password(admission, current, hash).await;
    if !ok {
        return Err(Error::invalid("current_password", "is not your password"));
    }
    let mut tx = store.write().await?;
    count_success(&mut tx, &keys, now).await?;
    tx.commit().await?;
    admission.ok_or_else(|| Error::Internal("the hashing task failed".into()))
}

/// Sign out everywhere: end every session of a user (the user themself, or
/// admins; recorded in the history).
pub async fn end_sessions(store: &Store, by: &Principal, now: OffsetDateTime, username: &str) -> Result<u64> {
    let mut tx = store.write().await?;
    require_account(&mut tx, by, username).await?;
    let user = load::user(&mut tx, username).await?;
    let ended = tx.delete_sessions_of(user.id).await?;
    let event = SessionsEnded { user: user.username, sessions_ended: ended };
    tx.record(None, now, &by.initiator(), event.into())?;
    tx.commit().await?;
    Ok(ended)
}
