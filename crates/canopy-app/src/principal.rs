//! Who acts: a person or an API key, resolved from a credential, and the
//! one way to ask whether they may do something ([`Principal::require`],
//! [`Principal::require_in`], both answered by `canopy_domain::authz`).

use std::collections::BTreeSet;

use canopy_domain::authz::{
    Action, Actor, ActorKind, authorize, effective_workspace_role, installation_key_role, workspace_key_role,
};
use canopy_domain::history::{Initiator, InitiatorKind};
use canopy_domain::{InstallationRole, WorkspaceRole};
use canopy_store::{ApiKeyRecord, ProjectRecord, Store, Tx, UserRecord, WorkspaceRecord};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::credentials::{API_KEY_PREFIX, SESSION_PREFIX, hash_secret};
use crate::error::{Error, Result};

/// The authenticated principal of a use case.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    /// The stored hash of the session token, when the principal signed in with one.
    pub session: Option<String>,
    /// Until when the session may stay unused, for a session of the web UI.
    pub idle_until: Option<OffsetDateTime>,
}

impl Principal {
    /// How this principal appears in the history.
    pub fn initiator(&self) -> Initiator {
        let kind = match self.actor.kind {
            ActorKind::User => InitiatorKind::User,
            ActorKind::InstallationKey | ActorKind::WorkspaceKey { .. } => InitiatorKind::ApiKey,
        };
        Initiator { kind, id: self.actor.id.to_string(), name: self.actor.name.clone() }
    }

    /// The principal's effective role in a workspace (directly, through groups, or as a scoped key).
    pub async fn workspace_role(&self, tx: &mut Tx, ws: &WorkspaceRecord) -> Result<Option<WorkspaceRole>> {
        let direct = match self.actor.kind {
            ActorKind::User => tx.membership_roles_of_user(ws.id, self.actor.id).await?,
            _ => Vec::new(),
        };
        Ok(effective_workspace_role(&self.actor, ws.id, direct))
    }

    /// The workspace `identifier` names, refusing unless the principal may
    /// perform `action` in it: loaded and authorised in one statement.
    pub async fn workspace_in(&self, tx: &mut Tx, identifier: &str, action: Action) -> Result<WorkspaceRecord> {
        Ok(self.workspace_and_project(tx, identifier, None, action).await?.0)
    }

    /// [`Principal::workspace_in`] and the workspace's project `project`,
    /// read in the same statement; a principal refused in the workspace
    /// learns nothing of its projects.
    pub async fn project_in(
        &self,
        tx: &mut Tx,
        (identifier, project): (&str, &str),
        action: Action,
    ) -> Result<(WorkspaceRecord, ProjectRecord)> {
        let (ws, p) = self.workspace_and_project(tx, identifier, Some(project), action).await?;
        let p = p.ok_or_else(|| crate::load::no_project(&ws, project))?;
        Ok((ws, p))
    }

    async fn workspace_and_project(
        &self,
        tx: &mut Tx,
        identifier: &str,
        project: Option<&str>,
        action: Action,
    ) -> Result<(WorkspaceRecord, Option<ProjectRecord>)> {
        let user = matches!(self.actor.kind, ActorKind::User).then_some(self.actor.id);
        let (ws, direct, p) = tx
            .project_with_roles(identifier, project, user)
            .await?
            .ok_or_else(|| Error::not_found(format!("workspace {identifier:?} does not exist")))?;
        let role = effective_workspace_role(&self.actor, ws.id, direct);
        authorize(&self.actor, action, Some((ws.id, role)))
            .map_err(|d| Error::Forbidden(format!("{d} (workspace {})", ws.identifier)))?;
        Ok((ws, p))
    }

    /// Refuse unless the principal may perform `action` in `ws`.
    pub async fn require_in(&self, tx: &mut Tx, ws: &WorkspaceRecord, action: Action) -> Result<()> {
        let role = self.workspace_role(tx, ws).await?;
        authorize(&self.actor, action, Some((ws.id, role)))
            .map_err(|d| Error::Forbidden(format!("{d} (workspace {})", ws.identifier)))
    }

    /// Refuse unless the principal may perform an installation-wide `action`.
    pub fn require(&self, action: Action) -> Result<()> {
        authorize(&self.actor, action, None).map_err(Error::from)
    }
}

/// The actor of an active user's account, `None` when it is gone or deactivated.
pub async fn user_actor(tx: &mut Tx, user_id: Uuid) -> Result<Option<Actor>> {
    Ok(tx.user_by_id(user_id).await?.filter(|u| u.active).map(|user| Actor {
        kind: ActorKind::User,
        id: user.id,
        name: user.username,
        installation_roles: user.installation_roles,
    }))
}

/// What an API key may act as now.
pub enum KeyActor {
    Acts(Actor),
    /// Its creator's account is gone or deactivated (AC10).
    CreatorGone,
    /// Its creator no longer holds what the key needs (ID3).
    Lost(&'static str),
}

/// An API key acts for its creator, never with more than the creator holds
/// now (ID3), and stops with the creator's account (AC10).
pub async fn key_actor(tx: &mut Tx, key: &ApiKeyRecord) -> Result<KeyActor> {
    let creator = match key.created_by_id {
        Some(id) => tx.user_by_id(id).await?,
        None => None,
    };
    let held = match (key.workspace_id, &creator) {
        (Some(ws), Some(c)) if c.active => tx.membership_roles_of_user(ws, c.id).await?,
        _ => Vec::new(),
    };
    Ok(key_actor_of(key, creator, held))
}

/// [`key_actor`] from what was read: the key's creator (if the account
/// still exists) and, for a key scoped to a workspace, the creator's roles there.
fn key_actor_of(key: &ApiKeyRecord, creator: Option<UserRecord>, held: Vec<WorkspaceRole>) -> KeyActor {
    let Some(creator) = creator.filter(|u| u.active) else {
        return KeyActor::CreatorGone;
    };
    let (kind, roles) = match key.workspace_id {
        Some(workspace_id) => {
            let Ok(role) = key.role.parse::<WorkspaceRole>() else { return KeyActor::CreatorGone };
            let creator_is_admin = creator.installation_roles.contains(&InstallationRole::Admin);
            let Some(role) = workspace_key_role(role, creator_is_admin, WorkspaceRole::strongest(held)) else {
                return KeyActor::Lost("this API key's creator no longer has access to its workspace");
            };
            (ActorKind::WorkspaceKey { workspace_id, role }, BTreeSet::new())
        }
        None => {
            let Ok(role) = key.role.parse::<InstallationRole>() else { return KeyActor::CreatorGone };
            let Some(role) = installation_key_role(role, &creator.installation_roles) else {
                return KeyActor::Lost("this API key's creator no longer holds its role");
            };
            (ActorKind::InstallationKey, BTreeSet::from([role]))
        }
    };
    KeyActor::Acts(Actor { kind, id: key.id, name: key.name.clone(), installation_roles: roles })
}

/// Resolve a bearer credential (a session token or an API key) into the
/// principal it stands for now. A session takes one statement; an API key
/// two (three when scoped to a workspace). None needs a transaction: each
/// statement reads committed state, so a sign-out, a deactivation or a
/// role change is seen by the next request, whatever node it reaches.
pub async fn authenticate(store: &Store, token: &str, now: OffsetDateTime) -> Result<Principal> {
    let hash = hash_secret(token);
    let invalid = || Error::Unauthenticated("the token is invalid or has expired; sign in again".into());
    let session = token.starts_with(SESSION_PREFIX).then(|| hash.clone());
    let mut idle_until = None;
    let actor = if token.starts_with(SESSION_PREFIX) {
        let (user, idle) = store.session_account(&hash, now).await?.filter(|(u, _)| u.active).ok_or_else(invalid)?;
        idle_until = idle;
        Actor { kind: ActorKind::User, id: user.id, name: user.username, installation_roles: user.installation_roles }
    } else if token.starts_with(API_KEY_PREFIX) {
        let (key, creator) = store.api_key_account(&hash, now).await?.ok_or_else(invalid)?;
        let held = match (key.workspace_id, &creator) {
            (Some(ws), Some(c)) if c.active => store.membership_roles_of_user(ws, c.id).await?,
            _ => Vec::new(),
        };
        match key_actor_of(&key, creator, held) {
            KeyActor::Acts(actor) => actor,
            KeyActor::CreatorGone => return Err(invalid()),
            KeyActor::Lost(why) => return Err(Error::Unauthenticated(why.into())),
        }
    } else {
        return Err(invalid());
    };
    Ok(Principal { actor, session, idle_until })
}
