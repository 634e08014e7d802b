//! API keys: service accounts for automation, scoped to a workspace or the
//! installation (ID3). People create and delete them; a key acts for its
//! creator, never with more than the creator holds now
//! ([`crate::principal::key_actor`]).

use canopy_domain::authz::{Action, action_to_hold};
use canopy_domain::events::{ApiKeyCreated, ApiKeyDeleted};
use canopy_domain::{DisplayName, InstallationRole, InvalidValue, WorkspaceRole};
use canopy_store::{ApiKeyRecord, NewApiKey, Store};
use time::OffsetDateTime;

use crate::credentials::{API_KEY_PREFIX, new_secret};
use crate::error::{Error, Result};
use crate::load::{self};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;

/// An API key to create. `role` is as given: a workspace role for a
/// workspace key, an installation role otherwise.
#[derive(Debug, Clone)]
pub struct NewApiKeyInput {
    /// Its display name, as given.
    pub name: String,
    /// The identifier of the workspace it is scoped to; `None`: the installation.
    pub workspace: Option<String>,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
}

/// A key just created, with its secret (shown once, stored only as a hash).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKeyRecord,
    pub secret: String,
}

/// Refuse an API key: keys are `managed` or `created` by people, never by
/// other keys (ID3), so automation cannot mint its own credentials.
pub fn require_person(by: &Principal) -> Result<()> {
    by.require(Action::ManageApiKeys)
}

/// The principal's own API keys (admins: every key); with `workspace`, every
/// key scoped to that workspace, for its managers (ID3). A page from
/// `cursor` (the last id seen), at most `limit` and one more.
pub async fn list(
    store: &Store,
    by: &Principal,
    workspace: Option<&str>,
    paging: &Paging,
) -> Result<Page<ApiKeyRecord>> {
    require_person(by)?;
    let (cursor, limit) = (paging.after.as_deref(), paging.limit);
    let mut tx = store.read().await?;
    let rows = match workspace {
        Some(ws) => {
            let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
            tx.list_api_keys(None, Some(ws.id), cursor, limit).await?
        }
        None => {
            // admins list every key
            let owner = if by.require(Action::AdministerUsers).is_ok() { None } else { Some(by.actor.id) };
            tx.list_api_keys(owner, None, cursor, limit).await?
        }
    };
    Ok(page(rows, limit, |k| k.id.to_string()))
}

/// Create an API key (ID3). A workspace key (`workspace` given) holds
/// `workspace_manager` or `workspace_member` there, at most the creator's own
/// role. An installation key (admins only) holds `admin` or
/// `platform_engineer`.
pub async fn create(store: &Store, by: &Principal, now: OffsetDateTime, input: NewApiKeyInput) -> Result<CreatedKey> {
    require_person(by)?;
    let NewApiKeyInput { name, workspace, role, expires_at } = input;
    crate::validate! { name: "name" => DisplayName::parse(&name) }
    if let Some(e) = expires_at {
        canopy_domain::access::check_new_expiry(e, now).map_err(|e| Error::invalid("expires_at", e.to_string()))?;
    }
    let mut tx = store.write().await?;
    let workspace = match &workspace {
        Some(w) => Some(
            load::workspace(&mut tx, w)
                .await
                .map_err(|_| Error::invalid("workspace", format!("workspace {w:?} does not exist")))?,
        ),
        None => None,
    };
    let role = match &workspace {
        Some(ws) => {
            let role: WorkspaceRole = role.parse().map_err(|e: InvalidValue| Error::invalid("role", e.to_string()))?;
            if role == WorkspaceRole::Owner {
                return Err(Error::invalid("role", "a key can be workspace_manager or workspace_member"));
            }
            by.require_in(&mut tx, ws, action_to_hold(role)).await?;
            role.as_str()
        }
        None => {
            let role: InstallationRole =
                role.parse().map_err(|e: InvalidValue| Error::invalid("role", e.to_string()))?;
            by.require(Action::CreateInstallationKey)?;
            role.as_str()
        }
    };
    let (secret, hash) = new_secret(API_KEY_PREFIX)?;
    let key = tx
        .insert_api_key(
            NewApiKey {
                name: name.as_str(),
                token_hash: &hash,
                workspace_id: workspace.as_ref().map(|w| w.id),
                role,
                created_by_id: Some(by.actor.id),
                created_by: &by.actor.name,
                expires_at,
            },
            now,
        )
        .await?;
    let created = ApiKeyCreated { key: key.id, name: key.name.clone(), role: role.to_owned(), expires_at };
    tx.record(workspace.as_ref().map(|w| w.id), now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(CreatedKey { key, secret })
}

/// Delete an API key (its creator, admins, and the managers of the key's
/// workspace, ID3). It stops working at once. Anyone else is told it does
/// not exist.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, id: &str) -> Result<()> {
    let not_found = || Error::not_found(format!("API key {id:?} does not exist"));
    require_person(by)?;
    let mut tx = store.write().await?;
    let key = tx.api_key(id).await?.ok_or_else(not_found)?;
    // its creator, admins, and the managers of the key's workspace may
    // revoke it; anyone else learns nothing of it
    let ws = match key.workspace_id {
        Some(id) => tx.workspace_by_id(id).await?,
        None => None,
    };
    let revoke = Action::RevokeApiKey { creator: key.created_by_id };
    let allowed = match &ws {
        Some(ws) => by.require_in(&mut tx, ws, revoke).await.is_ok(),
        None => by.require(revoke).is_ok(),
    };
    if !allowed {
        return Err(not_found());
    }
    tx.delete_api_key(key.id).await?;
    let deleted = ApiKeyDeleted { key: key.id, name: key.name, reason: None };
    tx.record(key.workspace_id, now, &by.initiator(), deleted.into())?;
    tx.commit().await?;
    Ok(())
}
