//! Expired access (AC8): bindings that expired (red) or expire within 7 days
//! (yellow), per workspace and across the installation. The classification is
//! `canopy_domain::access::expiry_state`; extending is `PATCH` on the binding.

use axum::Json;
use axum::extract::State;
use canopy_api_types::{ExpiringAccess, Page, Problem};
use canopy_app::expired_access as uc;
use canopy_app::paging::Paging;
use canopy_domain::access::ExpiryState;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiPath as Path, ApiQuery};
use crate::mapping::to_expiring;
use crate::routes::to_page;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExpiredAccessQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only `expired` or only `soon`.
    pub state: Option<String>,
}

impl ExpiredAccessQuery {
    fn parse(&self) -> ApiResult<(Option<ExpiryState>, Paging)> {
        let paging = Paging::parse(self.limit, self.cursor.as_deref())?;
        Ok((uc::parse_state(self.state.as_deref())?, paging))
    }
}

/// A workspace's expired and soon-expiring bindings, soonest first
/// (workspace managers).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/expired-access", tag = "bindings",
    params(("ws" = String, Path), ExpiredAccessQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<ExpiringAccess>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn workspace(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<ExpiredAccessQuery>,
) -> ApiResult<Json<Page<ExpiringAccess>>> {
    let (state, paging) = q.parse()?;
    let now = app.clock.now();
    Ok(Json(to_page(uc::of_workspace(&app.store, &caller, now, &ws, state, &paging).await?, to_expiring)))
}

/// Expired and soon-expiring bindings across the installation (admins).
#[utoipa::path(get, path = "/api/v1/expired-access", tag = "bindings", params(ExpiredAccessQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<ExpiringAccess>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn installation(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExpiredAccessQuery>,
) -> ApiResult<Json<Page<ExpiringAccess>>> {
    let (state, paging) = q.parse()?;
    let now = app.clock.now();
    Ok(Json(to_page(uc::of_installation(&app.store, &caller, now, state, &paging).await?, to_expiring)))
}
