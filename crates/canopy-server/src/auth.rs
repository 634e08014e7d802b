//! Credentials: password hashing, token secrets, and resolving a bearer
//! token into the calling [`Actor`].

use std::collections::BTreeSet;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use canopy_domain::authz::{
    Action, Actor, ActorKind, authorize, effective_workspace_role, installation_key_role, workspace_key_role,
};
use canopy_domain::history::{Initiator, InitiatorKind};
use canopy_domain::{InstallationRole, WorkspaceRole};
use canopy_store::{Tx, WorkspaceRecord};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Prefix of session tokens from `POST /auth/token`.
pub const SESSION_PREFIX: &str = "cnp_s_";
/// Prefix of API key secrets.
pub const API_KEY_PREFIX: &str = "cnp_k_";

/// Hash a password with argon2id (off the async runtime: it is slow on purpose).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
}

/// Whether `password` matches `hash`. Without a hash (unknown user, no local
/// password) a dummy hash is checked anyway so that timing does not tell.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qw3pZ5mXq0uQ0x9y8kq9m3V3yWw9cQeY2cN0uXcN3rA";
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
    let ok = tokio::task::spawn_blocking(move || {
        Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await
    .unwrap_or(false);
    ok && known
}

/// A new random secret with `prefix`, and the hash under which it is stored.
pub fn new_secret(prefix: &str) -> Result<(String, String), ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("random bytes: {e}")))?;
    let secret = format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    Ok((secret, hash))
}

/// Tokens and keys are stored only as this hash. They are long random
/// strings, so a fast hash suffices (no dictionary to attack).
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
}

impl Caller {
    /// How this caller appears in the history.
    pub fn initiator(&self) -> Initiator {
        let kind = match self.actor.kind {
            ActorKind::User => InitiatorKind::User,
            ActorKind::InstallationKey | ActorKind::WorkspaceKey { .. } => InitiatorKind::ApiKey,
        };
        Initiator { kind, id: self.actor.id.to_string(), name: self.actor.name.clone() }
    }

    /// The caller's effective role in a workspace (directly, through groups, or as a scoped key).
    pub async fn workspace_role(&self, tx: &mut Tx, ws: &WorkspaceRecord) -> Result<Option<WorkspaceRole>, ApiError> {
        let direct = match self.actor.kind {
            ActorKind::User => tx.membership_roles_of_user(ws.id, self.actor.id).await?,
            _ => Vec::new(),
        };
        Ok(effective_workspace_role(&self.actor, ws.id, direct))
    }

    /// Refuse unless the caller may perform `action` in `ws`.
    pub async fn require_in(&self, tx: &mut Tx, ws: &WorkspaceRecord, action: Action) -> Result<(), ApiError> {
        let role = self.workspace_role(tx, ws).await?;
        authorize(&self.actor, action, Some((ws.id, role)))
            .map_err(|d| ApiError::Forbidden(format!("{d} (workspace {})", ws.identifier)))
    }

    /// Refuse unless the caller may perform an installation-wide `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        authorize(&self.actor, action, None).map_err(ApiError::from)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthenticated("send Authorization: Bearer <token or API key>".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthenticated("the Authorization header must be Bearer <token>".into()))?;
        let now = app.clock.now();
        let hash = hash_secret(token);
        let mut tx = app.store.read().await?;
        let invalid = || ApiError::Unauthenticated("the token is invalid or has expired; sign in again".into());
        let actor = if token.starts_with(SESSION_PREFIX) {
            let user_id = tx.session_user(&hash, now).await?.ok_or_else(invalid)?;
            let user = tx.user_by_id(user_id).await?.ok_or_else(invalid)?;
            if !user.active {
                return Err(invalid());
            }
            Actor {
                kind: ActorKind::User,
                id: user.id,
                name: user.username,
                installation_roles: user.installation_roles,
            }
        } else if token.starts_with(API_KEY_PREFIX) {
            let key = tx.api_key_by_hash(&hash, now).await?.ok_or_else(invalid)?;
            // A key stops working with its creator's account (AC10), and never
            // holds more than its creator holds now (ID3).
            let creator = match key.created_by_id {
                Some(id) => tx.user_by_id(id).await?.filter(|u| u.active).ok_or_else(invalid)?,
                None => return Err(invalid()),
            };
            let (kind, roles) = match key.workspace_id {
                Some(workspace_id) => {
                    let role = key.role.parse::<WorkspaceRole>().map_err(|_| invalid())?;
                    let held = WorkspaceRole::strongest(tx.membership_roles_of_user(workspace_id, creator.id).await?);
                    let creator_is_admin = creator.installation_roles.contains(&InstallationRole::Admin);
                    let role = workspace_key_role(role, creator_is_admin, held).ok_or_else(|| {
                        ApiError::Unauthenticated("this API key's creator no longer has access to its workspace".into())
                    })?;
                    (ActorKind::WorkspaceKey { workspace_id, role }, BTreeSet::new())
                }
                None => {
                    let role = key.role.parse::<InstallationRole>().map_err(|_| invalid())?;
                    let role = installation_key_role(role, &creator.installation_roles).ok_or_else(|| {
                        ApiError::Unauthenticated("this API key's creator no longer holds its role".into())
                    })?;
                    (ActorKind::InstallationKey, BTreeSet::from([role]))
                }
            };
            Actor { kind, id: key.id, name: key.name, installation_roles: roles }
        } else {
            return Err(invalid());
        };
        Ok(Caller { actor })
    }
}
