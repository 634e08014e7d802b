//! Tag definitions (PR3): admins define the tags projects carry; every
//! signed-in principal reads them. Projects' tags are checked against them by
//! `canopy_domain::tags::apply_tags` on create and update.

use canopy_domain::authz::Action;
use canopy_domain::events::{TagDefinitionCreated, TagDefinitionDeleted, TagDefinitionUpdated};
use canopy_domain::platforms::FieldProblem;
use canopy_domain::tags::{self, TagDefinition};
use canopy_store::Store;
use time::OffsetDateTime;

use crate::error::{Error, FieldError, Result};
use crate::paging::{Page, Paging, page};
use crate::principal::Principal;

/// A tag to define, as given: its type (`type`) as written.
#[derive(Debug, Clone)]
pub struct NewTagDefinition {
    pub key: String,
    pub display_name: String,
    pub kind: String,
    pub options: Vec<String>,
    pub required: bool,
    pub default: Option<serde_json::Value>,
    pub admin_only: bool,
    pub pattern: Option<String>,
}

/// A change of a tag definition; its key and type stay. `None` keeps what
/// it has; `Some(None)` removes a default or a pattern.
#[derive(Debug, Clone, Default)]
pub struct TagDefinitionChange {
    pub display_name: Option<String>,
    pub options: Option<Vec<String>>,
    pub required: Option<bool>,
    pub default: Option<Option<serde_json::Value>>,
    pub admin_only: Option<bool>,
    pub pattern: Option<Option<String>>,
}

fn problems(list: Vec<FieldProblem>) -> Error {
    Error::Invalid(list.into_iter().map(|(field, message)| FieldError { field, message }).collect())
}

fn not_found(tag: &str) -> Error {
    Error::not_found(format!("no tag {tag:?}"))
}

/// Every tag definition, by key (every signed-in principal).
pub async fn list(store: &Store, paging: &Paging) -> Result<Page<TagDefinition>> {
    let mut tx = store.read().await?;
    let rows = tx.tag_definitions_page(paging.after.as_deref(), paging.fetch()).await?;
    Ok(page(rows, paging.limit, |d| d.key.clone()))
}

/// One tag definition (every signed-in principal).
pub async fn show(store: &Store, tag: &str) -> Result<TagDefinition> {
    let mut tx = store.read().await?;
    tx.tag_definition(tag).await?.ok_or_else(|| not_found(tag))
}

/// Define a tag (admins, PR3). The display name is trimmed; a null default
/// and an empty pattern are none.
pub async fn create(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    input: NewTagDefinition,
) -> Result<TagDefinition> {
    by.require(Action::AdministerInstallation)?;
    let kind = input.kind.parse().map_err(|e: canopy_domain::InvalidValue| Error::invalid("type", e.to_string()))?;
    let mut d = TagDefinition {
        key: input.key,
        display_name: input.display_name,
        kind,
        options: input.options,
        required: input.required,
        default: input.default,
        admin_only: input.admin_only,
        pattern: input.pattern,
    };
    d.display_name = d.display_name.trim().to_owned();
    d.default = d.default.filter(|v| !v.is_null());
    d.pattern = d.pattern.filter(|p| !p.is_empty());
    let found = tags::check_definition(&d);
    if !found.is_empty() {
        return Err(problems(found));
    }
    let mut tx = store.write().await?;
    if tx.tag_definition(&d.key).await?.is_some() {
        return Err(Error::conflict_on("key", format!("tag {} is defined already", d.key)));
    }
    tx.put_tag_definition(&d, now).await?;
    tx.record(None, now, &by.initiator(), TagDefinitionCreated { definition: (&d).into() }.into())?;
    tx.commit().await?;
    Ok(d)
}

/// Change a tag definition (admins, PR3). Projects keep their tags; the new
/// rules apply to their next change.
pub async fn update(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    tag: &str,
    change: TagDefinitionChange,
) -> Result<TagDefinition> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.write().await?;
    let before = tx.tag_definition(tag).await?.ok_or_else(|| not_found(tag))?;
    let mut d = before.clone();
    if let Some(n) = change.display_name {
        d.display_name = n.trim().to_owned();
    }
    if let Some(o) = change.options {
        d.options = o;
    }
    if let Some(r) = change.required {
        d.required = r;
    }
    if let Some(v) = change.default {
        d.default = v.filter(|v| !v.is_null());
    }
    if let Some(a) = change.admin_only {
        d.admin_only = a;
    }
    if let Some(p) = change.pattern {
        d.pattern = p.filter(|p| !p.is_empty());
    }
    let found = tags::check_definition(&d);
    if !found.is_empty() {
        return Err(problems(found));
    }
    tx.put_tag_definition(&d, now).await?;
    let updated = TagDefinitionUpdated { tag: d.key.clone(), old: (&before).into(), new: (&d).into() };
    tx.record(None, now, &by.initiator(), updated.into())?;
    tx.commit().await?;
    Ok(d)
}

/// Remove a tag definition (admins, PR3). Projects keep the values they carry.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, tag: &str) -> Result<()> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.write().await?;
    let d = tx.tag_definition(tag).await?.ok_or_else(|| not_found(tag))?;
    tx.delete_tag_definition(tag).await?;
    tx.record(None, now, &by.initiator(), TagDefinitionDeleted { definition: (&d).into() }.into())?;
    tx.commit().await?;
    Ok(())
}
