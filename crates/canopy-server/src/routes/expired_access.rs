//! Expired access (AC8): bindings that expired (red) or expire within 7 days
//! (yellow), per workspace and across the installation. The classification is
//! `canopy_domain::access::expiry_state`; extending is `PATCH` on the binding.

use axum::Json;
use axum::extract::State;
use canopy_api_types::{ExpiringAccess, Page, Problem};
use canopy_domain::access::EXPIRING_SOON;
use canopy_domain::authz::Action;
use canopy_store::Tx;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath as Path, ApiQuery};
use crate::mapping::to_expiring;
use crate::routes::{check_limit, decode_cursor, encode_cursor, load_workspace};

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

/// One page of the list, of one workspace or all.
async fn list(
    tx: &mut Tx,
    workspace: Option<Uuid>,
    q: &ExpiredAccessQuery,
    now: OffsetDateTime,
) -> ApiResult<Page<ExpiringAccess>> {
    let limit = check_limit(q.limit)?;
    let bad_cursor = || ApiError::invalid("cursor", "is not a cursor this API returned");
    let after = match decode_cursor(q.cursor.as_deref())? {
        None => None,
        Some(c) => {
            let (t, id) = c.split_once('/').ok_or_else(bad_cursor)?;
            let t = t
                .parse::<i64>()
                .ok()
                .and_then(|us| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok());
            Some((t.ok_or_else(bad_cursor)?, Uuid::parse_str(id).map_err(|_| bad_cursor())?))
        }
    };
    // `soon` ends 7 days ahead; `expired` ends now (the store filters by
    // expiration only, the domain decides the state)
    // `soon` starts after now: the expired ones before it are not walked
    let after = match (q.state.as_deref(), after) {
        (Some("soon"), a) => a.max(Some((now, Uuid::max()))),
        (_, a) => a,
    };
    let until = match q.state.as_deref() {
        None | Some("soon") => now + EXPIRING_SOON,
        Some("expired") => now,
        Some(_) => return Err(ApiError::invalid("state", "must be expired or soon")),
    };
    let mut items = Vec::new();
    let mut cursor = after;
    let mut next_cursor = None;
    // skip `expired` rows when only `soon` is asked for, page after page
    'pages: loop {
        let rows = tx.expiring_bindings(workspace, until, cursor, i64::from(limit) + 1).await?;
        let fetched = rows.len();
        for (b, ws, project) in rows {
            let key = b.binding.expires_at.map(|t| (t, b.binding.id));
            let Some(item) = to_expiring(b, ws, project, now) else { continue };
            if q.state.as_deref().is_some_and(|s| s != item.state) {
                cursor = key;
                continue;
            }
            if items.len() == limit as usize {
                next_cursor = cursor.map(|(t, id): (OffsetDateTime, Uuid)| {
                    encode_cursor(&format!("{}/{id}", t.unix_timestamp_nanos() / 1000))
                });
                break 'pages;
            }
            cursor = key;
            items.push(item);
        }
        if fetched <= limit as usize {
            break;
        }
    }
    Ok(Page { items, next_cursor })
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
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ManageWorkspace).await?;
    Ok(Json(list(&mut tx, Some(ws.id), &q, now).await?))
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
    caller.require(Action::AdministerInstallation)?;
    let now = app.clock.now();
    let mut tx = app.store.read().await?;
    Ok(Json(list(&mut tx, None, &q, now).await?))
}
