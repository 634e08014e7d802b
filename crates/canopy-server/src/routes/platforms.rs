//! Platforms and landing zones (TN1, TN2, AD5): registered by admins and
//! platform engineers, readable by everyone signed in (to choose one for a
//! tenant). Secrets are write-only.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{
    CreateLandingZone, CreatePlatform, FieldError, LandingZone, Page, Platform, Problem, UpdateLandingZone,
    UpdatePlatform,
};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_domain::platforms::{
    DeletionMode, FieldProblem, PlatformType, check_destination_change, check_landing_zone_settings,
    check_role_mapping, check_secrets, check_settings,
};
use canopy_domain::replication::DriftPolicy;
use canopy_domain::{DisplayName, Identifier};
use canopy_store::{LandingZoneRecord, NewPlatform, PlatformRecord, Tx};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, page};

fn to_platform(p: PlatformRecord, role_mapping: BTreeMap<String, String>) -> Platform {
    Platform {
        identifier: p.identifier,
        platform_type: p.platform_type.as_str().into(),
        settings: p.settings,
        secrets: p.secret_names,
        role_mapping,
        landing_zone_required: p.landing_zone_required,
        deletion: p.deletion.as_str().into(),
        drift_policy: p.drift_policy.as_str().into(),
        created_at: p.created_at,
    }
}

fn to_zone(z: LandingZoneRecord, platform: &str) -> LandingZone {
    LandingZone {
        platform: platform.to_owned(),
        identifier: z.identifier,
        display_name: z.display_name,
        settings: z.settings,
        created_at: z.created_at,
    }
}

fn parse_drift_policy(raw: Option<&str>, problems: &mut Vec<FieldProblem>) -> Option<DriftPolicy> {
    raw?.parse().map_err(|e: String| problems.push(("drift_policy".to_owned(), e))).ok()
}

fn invalid(problems: Vec<FieldProblem>) -> ApiResult<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid(problems.into_iter().map(|(field, message)| FieldError { field, message }).collect()))
}

async fn load_platform(tx: &mut Tx, identifier: &str) -> ApiResult<PlatformRecord> {
    tx.platform(identifier).await?.ok_or_else(|| ApiError::not_found(format!("platform {identifier:?} does not exist")))
}

/// Resolve a role mapping to project role ids, refusing unknown roles.
async fn resolve_mapping(tx: &mut Tx, mapping: &BTreeMap<String, String>) -> ApiResult<Vec<(Uuid, String)>> {
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

/// List the platforms.
#[utoipa::path(get, path = "/api/v1/platforms", tag = "platforms", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Platform>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Platform>>> {
    let limit = q.limit()?;
    let mut tx = app.store.read().await?;
    let rows = tx.list_platforms(q.cursor()?.as_deref(), limit).await?;
    let mut mappings = Vec::with_capacity(rows.len());
    for p in &rows {
        mappings.push(tx.role_mapping(p.id).await?);
    }
    let mut mappings = mappings.into_iter();
    Ok(Json(page(rows, limit, |p| p.identifier.clone(), |p| to_platform(p, mappings.next().unwrap_or_default()))))
}

/// Register a platform (admins, platform engineers).
#[utoipa::path(post, path = "/api/v1/platforms", tag = "platforms", request_body = CreatePlatform, security(("bearer" = [])),
    responses((status = 201, body = Platform), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePlatform>,
) -> ApiResult<(StatusCode, Json<Platform>)> {
    caller.require(Action::AdministerPlatforms)?;
    let mut problems = Vec::new();
    let identifier =
        Identifier::parse(&body.identifier).map_err(|e| problems.push(("identifier".to_owned(), e.to_string()))).ok();
    let ty =
        body.platform_type.parse::<PlatformType>().map_err(|e| problems.push(("type".to_owned(), e.to_string()))).ok();
    let deletion = match body.deletion.as_deref().map(str::parse::<DeletionMode>).transpose() {
        Ok(d) => d,
        Err(e) => {
            problems.push(("deletion".to_owned(), e.to_string()));
            None
        }
    };
    let drift_policy = parse_drift_policy(body.drift_policy.as_deref(), &mut problems);
    if let Some(ty) = ty {
        problems.extend(check_settings(ty, &body.settings, false));
        problems.extend(check_secrets(ty, &body.secrets, false));
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let mapping = resolve_mapping(&mut tx, &body.role_mapping).await.err();
    if let Some(ApiError::Invalid(errors)) = mapping {
        problems.extend(errors.into_iter().map(|e| (e.field, e.message)));
    }
    invalid(problems)?;
    let (Some(identifier), Some(ty)) = (identifier, ty) else {
        return Err(ApiError::Internal("validated fields are missing".into()));
    };
    if tx.platform(identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on("identifier", format!("platform {identifier} already exists")));
    }
    let new = NewPlatform {
        identifier: identifier.as_str(),
        platform_type: ty,
        settings: &body.settings,
        secrets: &body.secrets,
        landing_zone_required: body.landing_zone_required,
        deletion: deletion.unwrap_or(ty.default_deletion()),
        drift_policy: drift_policy.unwrap_or_default(),
    };
    let p = tx.insert_platform(new, &app.config.secret_key, now).await?;
    let mapping = resolve_mapping(&mut tx, &body.role_mapping).await?;
    tx.set_role_mapping(p.id, &mapping).await?;
    let role_mapping = tx.role_mapping(p.id).await?;
    let details = json!({"platform": p.identifier, "type": ty.as_str(), "settings": p.settings, "secrets_set": p.secret_names,
        "role_mapping": role_mapping, "landing_zone_required": p.landing_zone_required, "deletion": p.deletion.as_str(),
        "drift_policy": p.drift_policy.as_str()});
    tx.append_event(None, EventKind::PlatformCreated, now, &caller.initiator(), details).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_platform(p, role_mapping))))
}

/// Show a platform (its secrets only by name).
#[utoipa::path(get, path = "/api/v1/platforms/{platform}", tag = "platforms", params(("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Platform), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    _caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<Json<Platform>> {
    let mut tx = app.store.read().await?;
    let p = load_platform(&mut tx, &platform).await?;
    let mapping = tx.role_mapping(p.id).await?;
    Ok(Json(to_platform(p, mapping)))
}

/// Change a platform (admins, platform engineers). Changing where its
/// secrets are sent (its address, region, directory tenant or trusted
/// certificate) needs every secret given again, unless an admin makes the
/// change (SE4); the history records which of them changed.
#[utoipa::path(patch, path = "/api/v1/platforms/{platform}", tag = "platforms", params(("platform" = String, Path)),
    request_body = UpdatePlatform, security(("bearer" = [])),
    responses((status = 200, body = Platform), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(platform): Path<String>,
    ApiJson(body): ApiJson<UpdatePlatform>,
) -> ApiResult<Json<Platform>> {
    caller.require(Action::AdministerPlatforms)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let before = load_platform(&mut tx, &platform).await?;
    let old_mapping = tx.role_mapping(before.id).await?;
    let mut problems = Vec::new();
    if let Some(settings) = &body.settings {
        problems.extend(check_settings(before.platform_type, settings, false));
    }
    if let Some(secrets) = &body.secrets {
        problems.extend(check_secrets(before.platform_type, secrets, true));
    }
    let deletion = match body.deletion.as_deref().map(str::parse::<DeletionMode>).transpose() {
        Ok(d) => d,
        Err(e) => {
            problems.push(("deletion".to_owned(), e.to_string()));
            None
        }
    };
    let drift_policy = parse_drift_policy(body.drift_policy.as_deref(), &mut problems);
    invalid(problems)?;
    let mapping = match &body.role_mapping {
        Some(m) => Some(resolve_mapping(&mut tx, m).await?),
        None => None,
    };
    let mut after = before.clone();
    if let Some(settings) = body.settings {
        after.settings = settings;
    }
    after.landing_zone_required = body.landing_zone_required.unwrap_or(before.landing_zone_required);
    after.deletion = deletion.unwrap_or(before.deletion);
    after.drift_policy = drift_policy.unwrap_or(before.drift_policy);
    // a new address for the stored secrets needs them again, or an admin (SE4)
    let moved = check_destination_change(
        before.platform_type,
        &before.settings,
        &after.settings,
        body.secrets.as_ref(),
        caller.actor.is_admin(),
    )
    .map_err(|(field, message)| ApiError::invalid(&field, message))?;
    let mut secrets = tx.platform_secrets(before.id, &app.config.secret_key).await?;
    let rotated: Vec<String> = body.secrets.as_ref().map(|s| s.keys().cloned().collect()).unwrap_or_default();
    if let Some(new) = body.secrets {
        secrets.extend(new);
    }
    tx.update_platform(&after, &secrets, &app.config.secret_key).await?;
    if let Some(mapping) = mapping {
        tx.set_role_mapping(before.id, &mapping).await?;
    }
    let after = load_platform(&mut tx, &platform).await?;
    let new_mapping = tx.role_mapping(after.id).await?;
    let details = json!({
        "platform": after.identifier,
        "old": {"settings": before.settings, "role_mapping": old_mapping, "landing_zone_required": before.landing_zone_required, "deletion": before.deletion.as_str(), "drift_policy": before.drift_policy.as_str()},
        "new": {"settings": after.settings, "role_mapping": new_mapping, "landing_zone_required": after.landing_zone_required, "deletion": after.deletion.as_str(), "drift_policy": after.drift_policy.as_str()},
        "secrets_rotated": rotated,
        "destination_changed": moved,
    });
    tx.append_event(None, EventKind::PlatformUpdated, now, &caller.initiator(), details).await?;
    tx.commit().await?;
    Ok(Json(to_platform(after, new_mapping)))
}

/// Remove a platform and its landing zones (admins, platform engineers).
#[utoipa::path(delete, path = "/api/v1/platforms/{platform}", tag = "platforms", params(("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerPlatforms)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let p = load_platform(&mut tx, &platform).await?;
    let tenants = tx.count_tenants(p.id, None).await?;
    if tenants > 0 {
        return Err(ApiError::conflict_on(
            "platform",
            format!("platform {} still holds {tenants} tenant(s); delete them first", p.identifier),
        ));
    }
    tx.delete_platform(p.id).await?;
    tx.append_event(None, EventKind::PlatformDeleted, now, &caller.initiator(), json!({"platform": p.identifier}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A platform's landing zones.
#[utoipa::path(get, path = "/api/v1/platforms/{platform}/landing-zones", tag = "platforms", params(("platform" = String, Path)),
    security(("bearer" = [])), responses((status = 200, body = Page<LandingZone>), (status = 404, body = Problem)))]
pub async fn list_landing_zones(
    State(app): State<AppState>,
    _caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<Json<Page<LandingZone>>> {
    let mut tx = app.store.read().await?;
    let p = load_platform(&mut tx, &platform).await?;
    let items = tx.landing_zones(p.id).await?.into_iter().map(|z| to_zone(z, &p.identifier)).collect();
    Ok(Json(Page { items, next_cursor: None }))
}

/// Add a landing zone to a platform (admins, platform engineers).
#[utoipa::path(post, path = "/api/v1/platforms/{platform}/landing-zones", tag = "platforms", params(("platform" = String, Path)),
    request_body = CreateLandingZone, security(("bearer" = [])),
    responses((status = 201, body = LandingZone), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_landing_zone(
    State(app): State<AppState>,
    caller: Caller,
    Path(platform): Path<String>,
    ApiJson(body): ApiJson<CreateLandingZone>,
) -> ApiResult<(StatusCode, Json<LandingZone>)> {
    caller.require(Action::AdministerPlatforms)?;
    crate::validate! {
        identifier: "identifier" => Identifier::parse(&body.identifier),
        display_name: "display_name" => DisplayName::parse(&body.display_name),
    }
    invalid(check_landing_zone_settings(&body.settings))?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let p = load_platform(&mut tx, &platform).await?;
    if tx.landing_zone(p.id, identifier.as_str()).await?.is_some() {
        return Err(ApiError::conflict_on(
            "identifier",
            format!("landing zone {identifier} already exists on {}", p.identifier),
        ));
    }
    let z = tx.insert_landing_zone(p.id, identifier.as_str(), display_name.as_str(), &body.settings, now).await?;
    let details = json!({"platform": p.identifier, "landing_zone": z.identifier, "settings": z.settings});
    tx.append_event(None, EventKind::LandingZoneCreated, now, &caller.initiator(), details).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(to_zone(z, &p.identifier))))
}

async fn load_zone(tx: &mut Tx, p: &PlatformRecord, zone: &str) -> ApiResult<LandingZoneRecord> {
    tx.landing_zone(p.id, zone).await?.ok_or_else(|| {
        ApiError::not_found(format!("landing zone {zone:?} does not exist on platform {}", p.identifier))
    })
}

/// Show a landing zone.
#[utoipa::path(get, path = "/api/v1/platforms/{platform}/landing-zones/{zone}", tag = "platforms",
    params(("platform" = String, Path), ("zone" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LandingZone), (status = 404, body = Problem)))]
pub async fn show_landing_zone(
    State(app): State<AppState>,
    _caller: Caller,
    Path((platform, zone)): Path<(String, String)>,
) -> ApiResult<Json<LandingZone>> {
    let mut tx = app.store.read().await?;
    let p = load_platform(&mut tx, &platform).await?;
    Ok(Json(to_zone(load_zone(&mut tx, &p, &zone).await?, &p.identifier)))
}

/// Change a landing zone (admins, platform engineers).
#[utoipa::path(patch, path = "/api/v1/platforms/{platform}/landing-zones/{zone}", tag = "platforms",
    params(("platform" = String, Path), ("zone" = String, Path)), request_body = UpdateLandingZone, security(("bearer" = [])),
    responses((status = 200, body = LandingZone), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_landing_zone(
    State(app): State<AppState>,
    caller: Caller,
    Path((platform, zone)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateLandingZone>,
) -> ApiResult<Json<LandingZone>> {
    caller.require(Action::AdministerPlatforms)?;
    crate::validate! { display_name: "display_name" => body.display_name.as_deref().map(DisplayName::parse).transpose() }
    if let Some(s) = &body.settings {
        invalid(check_landing_zone_settings(s))?;
    }
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let p = load_platform(&mut tx, &platform).await?;
    let before = load_zone(&mut tx, &p, &zone).await?;
    let mut after = before.clone();
    if let Some(name) = display_name {
        after.display_name = name.into_string();
    }
    if let Some(settings) = body.settings {
        after.settings = settings;
    }
    tx.update_landing_zone(&after).await?;
    let details = json!({"platform": p.identifier, "landing_zone": after.identifier,
        "old": {"display_name": before.display_name, "settings": before.settings},
        "new": {"display_name": after.display_name, "settings": after.settings}});
    tx.append_event(None, EventKind::LandingZoneUpdated, now, &caller.initiator(), details).await?;
    tx.commit().await?;
    Ok(Json(to_zone(after, &p.identifier)))
}

/// Remove a landing zone (admins, platform engineers).
#[utoipa::path(delete, path = "/api/v1/platforms/{platform}/landing-zones/{zone}", tag = "platforms",
    params(("platform" = String, Path), ("zone" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_landing_zone(
    State(app): State<AppState>,
    caller: Caller,
    Path((platform, zone)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Action::AdministerPlatforms)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    let p = load_platform(&mut tx, &platform).await?;
    let z = load_zone(&mut tx, &p, &zone).await?;
    let tenants = tx.count_tenants(p.id, Some(z.id)).await?;
    if tenants > 0 {
        return Err(ApiError::conflict_on(
            "landing_zone",
            format!("landing zone {} is used by {tenants} tenant(s)", z.identifier),
        ));
    }
    tx.delete_landing_zone(z.id).await?;
    let details = json!({"platform": p.identifier, "landing_zone": z.identifier});
    tx.append_event(None, EventKind::LandingZoneDeleted, now, &caller.initiator(), details).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
