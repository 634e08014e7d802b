//! Platforms and landing zones (TN1, TN2, AD5): registered by admins and
//! platform engineers, readable by every signed-in principal (to choose one
//! for a tenant). Secrets are write-only: sealed by the store under the
//! installation's key, and shown only by name.
//!
//! (What use cases ask of the platforms themselves is the port in
//! [`crate::platforms`].)

use std::collections::BTreeMap;

use canopy_domain::authz::Action;
use canopy_domain::events::{
    LandingZoneCreated, LandingZoneDeleted, LandingZoneTerms, LandingZoneUpdated, PlatformCreated, PlatformDeleted,
    PlatformTerms, PlatformUpdated,
};
use canopy_domain::platforms::{
    DeletionMode, FieldProblem, PlatformType, check_destination_change, check_landing_zone_settings,
    check_role_mapping, check_secrets, check_settings,
};
use canopy_domain::replication::DriftPolicy;
use canopy_domain::{DisplayName, Identifier};
use canopy_store::{LandingZoneRecord, NewPlatform, PlatformRecord, SecretKey, Store, Tx};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::paging::{Page, Paging, encode};
use crate::principal::Principal;

/// A platform with its role mapping (project role → the platform's role).
#[derive(Debug, Clone)]
pub struct PlatformView {
    pub platform: PlatformRecord,
    pub role_mapping: BTreeMap<String, String>,
}

/// A landing zone with the identifier of its platform.
#[derive(Debug, Clone)]
pub struct LandingZoneView {
    pub platform: String,
    pub zone: LandingZoneRecord,
}

/// A platform to register, as given. Every field is checked at once, the
/// role mapping against the project roles in the database, so that one
/// answer names every invalid field.
#[derive(Debug, Clone)]
pub struct NewPlatformInput {
    pub identifier: String,
    pub platform_type: String,
    pub settings: Map<String, Value>,
    pub secrets: Map<String, Value>,
    pub role_mapping: BTreeMap<String, String>,
    pub landing_zone_required: bool,
    /// `None`: the platform type's default.
    pub deletion: Option<String>,
    /// `None`: the default policy.
    pub drift_policy: Option<String>,
}

/// A change of a platform, as given; `None` keeps what it has. It is checked
/// against the platform's type, so once the platform is loaded.
#[derive(Debug, Clone, Default)]
pub struct PlatformChange {
    pub settings: Option<Map<String, Value>>,
    /// Only the secrets given change (rotate); the others stay.
    pub secrets: Option<Map<String, Value>>,
    pub role_mapping: Option<BTreeMap<String, String>>,
    pub landing_zone_required: Option<bool>,
    pub deletion: Option<String>,
    pub drift_policy: Option<String>,
}

/// A landing zone to add to a platform.
#[derive(Debug, Clone)]
pub struct NewLandingZone {
    pub identifier: String,
    pub display_name: String,
    pub settings: Map<String, Value>,
}

/// A change of a landing zone; `None` keeps what it has.
#[derive(Debug, Clone, Default)]
pub struct LandingZoneChange {
    pub display_name: Option<String>,
    pub settings: Option<Map<String, Value>>,
}

fn parse_drift_policy(raw: Option<&str>, problems: &mut Vec<FieldProblem>) -> Option<DriftPolicy> {
    raw?.parse().map_err(|e: String| problems.push(("drift_policy".to_owned(), e))).ok()
}

fn parse_deletion(raw: Option<&str>, problems: &mut Vec<FieldProblem>) -> Option<DeletionMode> {
    match raw.map(str::parse::<DeletionMode>).transpose() {
        Ok(d) => d,
        Err(e) => {
            problems.push(("deletion".to_owned(), e.to_string()));
            None
        }
    }
}

fn invalid(problems: Vec<FieldProblem>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(problems.into_iter().map(|(field, message)| FieldError { field, message }).collect()))
}

pub async fn load_platform(tx: &mut Tx, identifier: &str) -> Result<PlatformRecord> {
    tx.platform(identifier).await?.ok_or_else(|| Error::not_found(format!("platform {identifier:?} does not exist")))
}

async fn load_zone(tx: &mut Tx, p: &PlatformRecord, zone: &str) -> Result<LandingZoneRecord> {
    tx.landing_zone(p.id, zone)
        .await?
        .ok_or_else(|| Error::not_found(format!("landing zone {zone:?} does not exist on platform {}", p.identifier)))
}

/// Resolve a role mapping to project role ids, refusing unknown roles.
async fn resolve_mapping(tx: &mut Tx, mapping: &BTreeMap<String, String>) -> Result<Vec<(Uuid, String)>> {
    let roles = tx.list_project_roles().await?;
    let names: Vec<String> = roles.iter().map(|r| r.identifier.clone()).collect();
    invalid(check_role_mapping(mapping, &names))?;
    Ok(mapping
        .iter()
        .filter_map(|(role, platform_role)| {
            roles.iter().find(|r| &r.identifier == role).map(|r| (r.id, platform_role.trim().to_owned()))
        })
        .collect())
}

/// A page of platforms by identifier, after `cursor`: at most `limit` and
/// one more (every signed-in principal).
pub async fn list(store: &Store, paging: &Paging) -> Result<Page<PlatformView>> {
    let mut tx = store.read().await?;
    let mut rows = tx.list_platforms(paging.after.as_deref(), paging.limit).await?;
    // the row past the page only says that another follows
    let more = rows.len() > paging.limit as usize;
    rows.truncate(paging.limit as usize);
    let mut out = Vec::with_capacity(rows.len());
    for platform in rows {
        let role_mapping = tx.role_mapping(platform.id).await?;
        out.push(PlatformView { platform, role_mapping });
    }
    let next_cursor = if more { out.last().map(|v| encode(&v.platform.identifier)) } else { None };
    Ok(Page { items: out, next_cursor })
}

/// A platform (every signed-in principal; its secrets only by name).
pub async fn show(store: &Store, platform: &str) -> Result<PlatformView> {
    let mut tx = store.read().await?;
    let platform = load_platform(&mut tx, platform).await?;
    let role_mapping = tx.role_mapping(platform.id).await?;
    Ok(PlatformView { platform, role_mapping })
}

/// Register a platform (admins, platform engineers; AD5, TN1). Its
/// settings and secrets are checked for its type, its role mapping against
/// the project roles; `key` seals the secrets.
pub async fn create(
    store: &Store,
    key: &SecretKey,
    by: &Principal,
    now: OffsetDateTime,
    input: NewPlatformInput,
) -> Result<PlatformView> {
    by.require(Action::AdministerPlatforms)?;
    let mut problems = Vec::new();
    let identifier =
        Identifier::parse(&input.identifier).map_err(|e| problems.push(("identifier".to_owned(), e.to_string()))).ok();
    let ty =
        input.platform_type.parse::<PlatformType>().map_err(|e| problems.push(("type".to_owned(), e.to_string()))).ok();
    let deletion = parse_deletion(input.deletion.as_deref(), &mut problems);
    let drift_policy = parse_drift_policy(input.drift_policy.as_deref(), &mut problems);
    if let Some(ty) = ty {
        problems.extend(check_settings(ty, &input.settings, false));
        problems.extend(check_secrets(ty, &input.secrets, false));
    }
    let mut tx = store.write().await?;
    let mapping = resolve_mapping(&mut tx, &input.role_mapping).await.err();
    if let Some(Error::Invalid(errors)) = mapping {
        problems.extend(errors.into_iter().map(|e| (e.field, e.message)));
    }
    invalid(problems)?;
    let (Some(identifier), Some(ty)) = (identifier, ty) else {
        return Err(Error::internal("validated fields are missing"));
    };
    if tx.platform(identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on("identifier", format!("platform {identifier} already exists")));
    }
    let new = NewPlatform {
        identifier: identifier.as_str(),
        platform_type: ty,
        settings: &input.settings,
        secrets: &input.secrets,
        landing_zone_required: input.landing_zone_required,
        deletion: deletion.unwrap_or(ty.default_deletion()),
        drift_policy: drift_policy.unwrap_or_default(),
    };
    let p = tx.insert_platform(new, key, now).await?;
    let mapping = resolve_mapping(&mut tx, &input.role_mapping).await?;
    tx.set_role_mapping(p.id, &mapping, now).await?;
    let role_mapping = tx.role_mapping(p.id).await?;
    let created = PlatformCreated {
        platform: p.identifier.clone(),
        r#type: ty.as_str().to_owned(),
        secrets_set: p.secret_names.clone(),
        terms: terms(&p, &role_mapping),
    };
    tx.record(None, now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(PlatformView { platform: p, role_mapping })
}

/// A platform's settings, role mapping and policies as the history records them.
fn terms(p: &PlatformRecord, role_mapping: &BTreeMap<String, String>) -> PlatformTerms {
    PlatformTerms {
        settings: p.settings.clone(),
        role_mapping: role_mapping.clone(),
        landing_zone_required: p.landing_zone_required,
        deletion: p.deletion.as_str().to_owned(),
        drift_policy: p.drift_policy.as_str().to_owned(),
    }
}

/// Change a platform (admins, platform engineers; AD5). Changing where its
/// secrets are sent (its address, region, directory tenant or trusted
/// certificate) needs every secret given again, unless an admin makes the
/// change (SE4); the history records which of them changed.
pub async fn update(
    store: &Store,
    key: &SecretKey,
    by: &Principal,
    now: OffsetDateTime,
    platform: &str,
    change: PlatformChange,
) -> Result<PlatformView> {
    by.require(Action::AdministerPlatforms)?;
    let mut tx = store.write().await?;
    let before = load_platform(&mut tx, platform).await?;
    let old_mapping = tx.role_mapping(before.id).await?;
    let mut problems = Vec::new();
    if let Some(settings) = &change.settings {
        problems.extend(check_settings(before.platform_type, settings, false));
    }
    if let Some(secrets) = &change.secrets {
        problems.extend(check_secrets(before.platform_type, secrets, true));
    }
    let deletion = parse_deletion(change.deletion.as_deref(), &mut problems);
    let drift_policy = parse_drift_policy(change.drift_policy.as_deref(), &mut problems);
    invalid(problems)?;
    let mapping = match &change.role_mapping {
        Some(m) => Some(resolve_mapping(&mut tx, m).await?),
        None => None,
    };
    let mut after = before.clone();
    if let Some(settings) = change.settings {
        after.settings = settings;
    }
    after.landing_zone_required = change.landing_zone_required.unwrap_or(before.landing_zone_required);
    after.deletion = deletion.unwrap_or(before.deletion);
    after.drift_policy = drift_policy.unwrap_or(before.drift_policy);
    // a new address for the stored secrets needs them again, or an admin (SE4)
    let moved = check_destination_change(
        before.platform_type,
        &before.settings,
        &after.settings,
        change.secrets.as_ref(),
        by.require(Action::RedirectPlatformSecrets).is_ok(),
    )
    .map_err(|(field, message)| Error::invalid(&field, message))?;
    let mut secrets = tx.platform_secrets(before.id, key).await?;
    let rotated: Vec<String> = change.secrets.as_ref().map(|s| s.keys().cloned().collect()).unwrap_or_default();
    if let Some(new) = change.secrets {
        secrets.extend(new);
    }
    tx.update_platform(&after, &secrets, key, now).await?;
    if let Some(mapping) = mapping {
        tx.set_role_mapping(before.id, &mapping, now).await?;
    }
    let after = load_platform(&mut tx, platform).await?;
    let new_mapping = tx.role_mapping(after.id).await?;
    let updated = PlatformUpdated {
        platform: after.identifier.clone(),
        old: terms(&before, &old_mapping),
        new: terms(&after, &new_mapping),
        secrets_rotated: rotated,
        destination_changed: moved.into_iter().map(str::to_owned).collect(),
    };
    tx.record(None, now, &by.initiator(), updated.into())?;
    tx.commit().await?;
    Ok(PlatformView { platform: after, role_mapping: new_mapping })
}

/// Remove a platform and its landing zones (admins, platform engineers;
/// AD5); refused while it holds tenants.
pub async fn delete(store: &Store, by: &Principal, now: OffsetDateTime, platform: &str) -> Result<()> {
    by.require(Action::AdministerPlatforms)?;
    let mut tx = store.write().await?;
    let p = load_platform(&mut tx, platform).await?;
    let tenants = tx.count_tenants(p.id, None).await?;
    if tenants > 0 {
        return Err(Error::conflict_on(
            "platform",
            format!("platform {} still holds {tenants} tenant(s); delete them first", p.identifier),
        ));
    }
    tx.delete_platform(p.id).await?;
    tx.record(None, now, &by.initiator(), PlatformDeleted { platform: p.identifier }.into())?;
    tx.commit().await?;
    Ok(())
}

/// A platform's landing zones (every signed-in principal; TN2).
pub async fn landing_zones(store: &Store, platform: &str) -> Result<Vec<LandingZoneView>> {
    let mut tx = store.read().await?;
    let p = load_platform(&mut tx, platform).await?;
    Ok(tx
        .landing_zones(p.id)
        .await?
        .into_iter()
        .map(|zone| LandingZoneView { platform: p.identifier.clone(), zone })
        .collect())
}

/// A landing zone (every signed-in principal; TN2).
pub async fn show_landing_zone(store: &Store, (platform, zone): (&str, &str)) -> Result<LandingZoneView> {
    let mut tx = store.read().await?;
    let p = load_platform(&mut tx, platform).await?;
    let zone = load_zone(&mut tx, &p, zone).await?;
    Ok(LandingZoneView { platform: p.identifier, zone })
}

/// Add a landing zone to a platform (admins, platform engineers; TN2, AD5).
pub async fn create_landing_zone(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    platform: &str,
    input: NewLandingZone,
) -> Result<LandingZoneView> {
    by.require(Action::AdministerPlatforms)?;
    let NewLandingZone { identifier, display_name, settings } = input;
    crate::validate! {
        identifier: "identifier" => Identifier::parse(&identifier),
        display_name: "display_name" => DisplayName::parse(&display_name),
    }
    invalid(check_landing_zone_settings(&settings))?;
    let mut tx = store.write().await?;
    let p = load_platform(&mut tx, platform).await?;
    if tx.landing_zone(p.id, identifier.as_str()).await?.is_some() {
        return Err(Error::conflict_on(
            "identifier",
            format!("landing zone {identifier} already exists on {}", p.identifier),
        ));
    }
    let z = tx.insert_landing_zone(p.id, identifier.as_str(), display_name.as_str(), &settings, now).await?;
    let created = LandingZoneCreated {
        platform: p.identifier.clone(),
        landing_zone: z.identifier.clone(),
        settings: z.settings.clone(),
    };
    tx.record(None, now, &by.initiator(), created.into())?;
    tx.commit().await?;
    Ok(LandingZoneView { platform: p.identifier, zone: z })
}

/// Change a landing zone (admins, platform engineers; TN2, AD5).
pub async fn update_landing_zone(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (platform, zone): (&str, &str),
    change: LandingZoneChange,
) -> Result<LandingZoneView> {
    by.require(Action::AdministerPlatforms)?;
    crate::validate! { display_name: "display_name" => change.display_name.as_deref().map(DisplayName::parse).transpose() }
    if let Some(s) = &change.settings {
        invalid(check_landing_zone_settings(s))?;
    }
    let mut tx = store.write().await?;
    let p = load_platform(&mut tx, platform).await?;
    let before = load_zone(&mut tx, &p, zone).await?;
    let mut after = before.clone();
    if let Some(name) = display_name {
        after.display_name = name.into_string();
    }
    if let Some(settings) = change.settings {
        after.settings = settings;
    }
    tx.update_landing_zone(&after).await?;
    let updated = LandingZoneUpdated {
        platform: p.identifier.clone(),
        landing_zone: after.identifier.clone(),
        old: LandingZoneTerms { display_name: before.display_name.clone(), settings: before.settings.clone() },
        new: LandingZoneTerms { display_name: after.display_name.clone(), settings: after.settings.clone() },
    };
    tx.record(None, now, &by.initiator(), updated.into())?;
    tx.commit().await?;
    Ok(LandingZoneView { platform: p.identifier, zone: after })
}

/// Remove a landing zone (admins, platform engineers; TN2, AD5); refused
/// while tenants use it.
pub async fn delete_landing_zone(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (platform, zone): (&str, &str),
) -> Result<()> {
    by.require(Action::AdministerPlatforms)?;
    let mut tx = store.write().await?;
    let p = load_platform(&mut tx, platform).await?;
    let z = load_zone(&mut tx, &p, zone).await?;
    let tenants = tx.count_tenants(p.id, Some(z.id)).await?;
    if tenants > 0 {
        return Err(Error::conflict_on(
            "landing_zone",
            format!("landing zone {} is used by {tenants} tenant(s)", z.identifier),
        ));
    }
    tx.delete_landing_zone(z.id).await?;
    let deleted = LandingZoneDeleted { platform: p.identifier, landing_zone: z.identifier };
    tx.record(None, now, &by.initiator(), deleted.into())?;
    tx.commit().await?;
    Ok(())
}
