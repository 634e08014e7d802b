//! Installation settings (admins): four-eye (FE1), the longest access a
//! binding may grant (AC7) and substitute payment methods (PM2); changes are
//! use cases of [`canopy_app::settings`].

use axum::Json;
use axum::extract::State;
use canopy_api_types::{Problem, Settings, UpdateSettings};
use canopy_app::settings::{self as uc, FourEyeChange, SettingsChange};
use canopy_store::InstallationSettings;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::mapping::to_setting;

fn to_settings(s: InstallationSettings) -> Settings {
    Settings {
        four_eye: to_setting(s.four_eye),
        max_binding_days: s.max_binding_days,
        payment_substitutes: s.payment_substitutes,
    }
}

/// The installation's settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = Settings), (status = 403, body = Problem)))]
pub async fn show(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Settings>> {
    Ok(Json(to_settings(uc::show(&app.store, &caller).await?)))
}

/// Change the installation's settings; fields left out stay as they are.
/// Changing four-eye affects requests made from then on; pending ones keep
/// the approvals they were made with.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", request_body = UpdateSettings, security(("bearer" = [])),
    responses((status = 200, body = Settings), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateSettings>,
) -> ApiResult<Json<Settings>> {
    let change = SettingsChange {
        four_eye: body.four_eye.map(|f| FourEyeChange { enabled: f.enabled, approvals: f.approvals }),
        max_binding_days: body.max_binding_days,
        payment_substitutes: body.payment_substitutes,
    };
    Ok(Json(to_settings(uc::update(&app.store, &caller, app.clock.now(), change).await?)))
}
