//! Installation settings (admins): four-eye (FE1), the longest access a
//! binding may grant (AC7) and substitute payment methods (PM2).

use axum::Json;
use axum::extract::State;
use canopy_api_types::{FieldError, Problem, Settings, UpdateSettings};
use canopy_domain::authz::Action;
use canopy_domain::history::EventKind;
use canopy_store::InstallationSettings;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::mapping::to_setting;
use crate::routes::four_eye;

/// The most days a maximum for access may name (a hundred years).
const MAX_BINDING_DAYS: u32 = 36_500;

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
    caller.require(Action::AdministerInstallation)?;
    let mut tx = app.store.read().await?;
    Ok(Json(to_settings(tx.settings().await?)))
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
    caller.require(Action::AdministerInstallation)?;
    let now = app.clock.now();
    let mut tx = app.store.write().await?;
    tx.lock_settings().await?;
    let old = tx.settings().await?;
    let mut errors = Vec::new();
    let four_eye = body.four_eye.map(|f| four_eye("four_eye", old.four_eye, f)).transpose().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if let Some(Some(days)) = body.max_binding_days
        && !(1..=MAX_BINDING_DAYS).contains(&days)
    {
        errors.push(FieldError {
            field: "max_binding_days".into(),
            message: format!("must be between 1 and {MAX_BINDING_DAYS}, or null for no maximum"),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let new = InstallationSettings {
        four_eye: four_eye.unwrap_or(old.four_eye),
        max_binding_days: body.max_binding_days.unwrap_or(old.max_binding_days),
        payment_substitutes: body.payment_substitutes.unwrap_or(old.payment_substitutes),
    };
    if new != old {
        tx.set_settings(&new).await?;
        let (o, n) = (to_settings(old), to_settings(new));
        tx.append_event(None, EventKind::SettingsChanged, now, &caller.initiator(), json!({"old": o, "new": n}))
            .await?;
    }
    tx.commit().await?;
    Ok(Json(to_settings(new)))
}
