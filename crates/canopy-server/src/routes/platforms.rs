//! Platforms and landing zones (TN1, TN2, AD5): registered by admins and
//! platform engineers, readable by everyone signed in (to choose one for a
//! tenant). Secrets are write-only. The use cases are in
//! [`canopy_app::platform_registry`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canopy_api_types::{
    CreateLandingZone, CreatePlatform, LandingZone, Page, Platform, Problem, UpdateLandingZone, UpdatePlatform,
};
use canopy_app::platform_registry::{
    self as uc, LandingZoneChange, LandingZoneView, NewLandingZone, NewPlatformInput, PlatformChange, PlatformView,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath as Path, ApiQuery};
use crate::routes::{ListQuery, to_page};

fn to_platform(v: PlatformView) -> Platform {
    let PlatformView { platform: p, role_mapping } = v;
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

fn to_zone(v: LandingZoneView) -> LandingZone {
    let LandingZoneView { platform, zone: z } = v;
    LandingZone {
        platform,
        identifier: z.identifier,
        display_name: z.display_name,
        settings: z.settings,
        created_at: z.created_at,
    }
}

/// List the platforms.
#[utoipa::path(get, path = "/api/v1/platforms", tag = "platforms", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Platform>), (status = 401, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Platform>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(uc::list(&app.store, &paging).await?, to_platform)))
}

/// Register a platform (admins, platform engineers).
#[utoipa::path(post, path = "/api/v1/platforms", tag = "platforms", request_body = CreatePlatform, security(("bearer" = [])),
    responses((status = 201, body = Platform), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePlatform>,
) -> ApiResult<(StatusCode, Json<Platform>)> {
    // the use case checks every field at once: the role mapping needs the project roles
    let input = NewPlatformInput {
        identifier: body.identifier,
        platform_type: body.platform_type,
        settings: body.settings,
        secrets: body.secrets,
        role_mapping: body.role_mapping,
        landing_zone_required: body.landing_zone_required,
        deletion: body.deletion,
        drift_policy: body.drift_policy,
    };
    let p = uc::create(&app.store, &app.config.secret_key, &caller, app.clock.now(), input).await?;
    Ok((StatusCode::CREATED, Json(to_platform(p))))
}

/// Show a platform (its secrets only by name).
#[utoipa::path(get, path = "/api/v1/platforms/{platform}", tag = "platforms", params(("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Platform), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    _caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<Json<Platform>> {
    Ok(Json(to_platform(uc::show(&app.store, &platform).await?)))
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
    // checked by the use case against the platform's type, once it is loaded
    let change = PlatformChange {
        settings: body.settings,
        secrets: body.secrets,
        role_mapping: body.role_mapping,
        landing_zone_required: body.landing_zone_required,
        deletion: body.deletion,
        drift_policy: body.drift_policy,
    };
    let now = app.clock.now();
    Ok(Json(to_platform(uc::update(&app.store, &app.config.secret_key, &caller, now, &platform, change).await?)))
}

/// Remove a platform and its landing zones (admins, platform engineers).
#[utoipa::path(delete, path = "/api/v1/platforms/{platform}", tag = "platforms", params(("platform" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(platform): Path<String>,
) -> ApiResult<StatusCode> {
    uc::delete(&app.store, &caller, app.clock.now(), &platform).await?;
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
    let items = uc::landing_zones(&app.store, &platform).await?.into_iter().map(to_zone).collect();
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
    let input =
        NewLandingZone { identifier: body.identifier, display_name: body.display_name, settings: body.settings };
    let z = uc::create_landing_zone(&app.store, &caller, app.clock.now(), &platform, input).await?;
    Ok((StatusCode::CREATED, Json(to_zone(z))))
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
    Ok(Json(to_zone(uc::show_landing_zone(&app.store, (&platform, &zone)).await?)))
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
    let change = LandingZoneChange { display_name: body.display_name, settings: body.settings };
    let now = app.clock.now();
    Ok(Json(to_zone(uc::update_landing_zone(&app.store, &caller, now, (&platform, &zone), change).await?)))
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
    uc::delete_landing_zone(&app.store, &caller, app.clock.now(), (&platform, &zone)).await?;
    Ok(StatusCode::NO_CONTENT)
}
