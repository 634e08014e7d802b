//! First start: the installation admin and the default project roles.

use std::collections::BTreeSet;

use canopy_domain::InstallationRole;
use canopy_domain::events::{ProjectRoleCreated, UserCreated};
use canopy_domain::history::{Initiator, InitiatorKind};
use canopy_domain::roles::DEFAULT_PROJECT_ROLES;
use canopy_store::{NewUser, Store};

use crate::auth::hash_password;
use crate::error::ApiError;

/// Why the first start could not set up the installation.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("the admin password (CANOPY_ADMIN_PASSWORD) {0}")]
    WeakPassword(canopy_domain::InvalidValue),
    #[error(transparent)]
    Store(#[from] canopy_store::StoreError),
    #[error("{0}")]
    Credentials(String),
}

impl From<ApiError> for BootstrapError {
    fn from(e: ApiError) -> Self {
        Self::Credentials(e.to_problem().detail)
    }
}

impl From<canopy_app::Error> for BootstrapError {
    fn from(e: canopy_app::Error) -> Self {
        Self::Credentials(e.to_string())
    }
}

/// What [`bootstrap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The database already had users; nothing was done.
    AlreadyInitialised,
    /// The admin was created with the password that was given.
    AdminCreated,
    /// The admin was created with this generated password, to be shown once.
    AdminCreatedWithGeneratedPassword(String),
}

/// The username of the installation admin created on an empty database.
pub const ADMIN_USERNAME: &str = "admin";

/// On an empty database, create the admin `admin` (with `password`, or a
/// generated one) and the default project roles, in one transaction.
pub async fn bootstrap(
    store: &Store,
    now: time::OffsetDateTime,
    password: Option<String>,
) -> Result<BootstrapOutcome, BootstrapError> {
    // the password is hashed before the write transaction, which holds the
    // writer; the count is asked again inside it, against a second bootstrap
    if store.read().await?.count_users().await? > 0 {
        return Ok(BootstrapOutcome::AlreadyInitialised);
    }
    let (password, generated) = match password {
        Some(p) => {
            canopy_domain::names::check_password(&p).map_err(BootstrapError::WeakPassword)?;
            (p, false)
        }
        None => {
            let (secret, _) = crate::auth::new_secret("")?;
            (secret.chars().take(24).collect::<String>(), true)
        }
    };
    let hash = hash_password(password.clone()).await?;
    let mut tx = store.write().await?;
    if tx.count_users().await? > 0 {
        return Ok(BootstrapOutcome::AlreadyInitialised);
    }
    let system = Initiator { kind: InitiatorKind::System, id: String::new(), name: "bootstrap".into() };
    let roles = BTreeSet::from([InstallationRole::Admin]);
    let admin = tx
        .insert_user(
            NewUser {
                username: ADMIN_USERNAME,
                email: "admin@localhost",
                first_name: "Installation",
                last_name: "Admin",
                password_hash: Some(&hash),
                installation_roles: &roles,
            },
            now,
        )
        .await?;
    let created = UserCreated {
        user: admin.username,
        email: admin.email,
        installation_roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
    };
    tx.record(None, now, &system, created.into())?;
    for (identifier, display_name, description) in DEFAULT_PROJECT_ROLES {
        tx.insert_project_role(identifier, display_name, description, now).await?;
        let role = ProjectRoleCreated { role: identifier.to_owned(), display_name: display_name.to_owned() };
        tx.record(None, now, &system, role.into())?;
    }
    tx.commit().await?;
    Ok(if generated {
        BootstrapOutcome::AdminCreatedWithGeneratedPassword(password)
    } else {
        BootstrapOutcome::AdminCreated
    })
}
