//! Project roles (AC4): the roles a binding grants in a project, configured
//! by admins and mapped to each platform's own roles. Every signed-in
//! principal reads them, to bind subjects.

use canopy_domain::authz::Action;
use canopy_domain::events::{ProjectRoleCreated, ProjectRoleDeleted, ProjectRoleTerms, ProjectRoleUpdated};
use canopy_domain::{DisplayName, InvalidValue, RoleIdentifier};
use canopy_store::{ProjectRoleRecord, Store, Tx};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::principal::Principal;

/// A project role to create (admins).
#[derive(Debug, Clone)]
pub struct NewProjectRole {
    pub identifier: String,
    pub display_name: String,
    pub description: String,
}

/// A change of a project role; `None` keeps what it has.
#[derive(Debug, Clone, Default)]
pub struct ProjectRoleChange {
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// A project role's description as given: trimmed, at most 500 characters.
fn description(d: &str) -> Result<String, InvalidValue> {
    let d = d.trim();
    if d.chars().count() > 500 {
        return Err(InvalidValue("must be at most 500 characters".into()));
    }
    Ok(d.to_owned())
}

pub async fn load_role(tx: &mut Tx, identifier: &str) -> Result<ProjectRoleRecord> {
    tx.project_role(identifier)
        .await?
        .ok_or_else(|| Error::not_found(format!("project role {identifier:?} does not exist")))
}

/// Every project role (every signed-in principal).
pub async fn list(store: &Store) -> Result<Vec<ProjectRoleRecord>> {
    let mut tx = store.read().await?;
    Ok(tx.list_project_roles().await?)
}

/// One project role (every signed-in principal).
pub async fn show(store: &Store, identifier: &str) -> Result<ProjectRoleRecord> {
    load_role(&mut store.read().await?, identifier).await
}

/// Create a project role (admins, AC4).
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    input: NewProjectRole,
) -> Result<ProjectRoleRecord> {
    by.require(Action::AdministerProjectRoles)?;
    crate::validate! {
        identifier: "identifier" => RoleIdentifier::parse(&input.identifier),
        display_name: "display_name" => DisplayName::parse(&input.display_name),
        description: "description" => self::description(&input.description),
    }
    let mut tx = store.write().await?;
    if tx.project_role(identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on("identifier", format!("project role {identifier} already exists")));
    }
    let r = tx.insert_project_role(identifier.as_str(), display_name.as_str(), &description, now).await?;
    let created = ProjectRoleCreated { role: r.identifier.clone(), display_name: r.display_name.clone() };
    tx.record(None, now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(r)
}

/// Change a project role's name or description (admins, AC4).
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    role: &str,
    change: ProjectRoleChange,
) -> Result<ProjectRoleRecord> {
    by.require(Action::AdministerProjectRoles)?;
    crate::validate! {
        display_name: "display_name" => change.display_name.as_deref().map(DisplayName::parse).transpose(),
        description: "description" => change.description.as_deref().map(self::description).transpose(),
    }
    let mut tx = store.write().await?;
    let before = load_role(&mut tx, role).await?;
    let name = display_name.map_or_else(|| before.display_name.clone(), DisplayName::into_string);
    let description = description.unwrap_or_else(|| before.description.clone());
    tx.update_project_role(before.id, &name, &description).await?;
    let updated = ProjectRoleUpdated {
        role: before.identifier.clone(),
        old: ProjectRoleTerms { display_name: before.display_name.clone(), description: before.description.clone() },
        new: ProjectRoleTerms { display_name: name, description },
    };
    tx.record(None, now, &by.initiator(), updated.into())?;
    let after = load_role(&mut tx, role).await?;
    tx.commit().await?;
    Ok(after)
}

/// Delete a project role (admins, AC4); refused while a platform maps it, a
/// binding grants it or a pending request names it.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, role: &str) -> Result<()> {
    by.require(Action::AdministerProjectRoles)?;
    let mut tx = store.write().await?;
    let r = load_role(&mut tx, role).await?;
    let mapped = tx.count_role_mappings_with_role(r.id).await?;
    if mapped > 0 {
        return Err(Error::conflict(format!(
            "project role {} is mapped on {mapped} platform(s); change their role mappings first",
            r.identifier
        )));
    }
    let used = tx.count_bindings_with_role(r.id).await?;
    if used > 0 {
        return Err(Error::conflict(format!(
            "project role {} is used by {used} binding(s); change or remove them first",
            r.identifier
        )));
    }
    let waiting = tx.count_pending_requests_with_role(r.id).await?;
    if waiting > 0 {
        return Err(Error::conflict(format!(
            "project role {} is named by {waiting} pending request(s); decide them first",
            r.identifier
        )));
    }
    tx.delete_project_role(r.id).await?;
    tx.record(None, now, &by.initiator(), ProjectRoleDeleted { role: r.identifier.clone() }.into())?;
    tx.commit().await?;
    Ok(())
}
