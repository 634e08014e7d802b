//! The admin area (AD2) and history verification (HI3).

use axum::Json;
use axum::extract::State;
use canopy_api_types::{BrokenLink, HistoryVerification, Page, Problem, Workspace};
use canopy_domain::authz::Action;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::routes::ListQuery;
use crate::routes::workspaces::workspace_page;

/// Every workspace of the installation (admins).
#[utoipa::path(get, path = "/api/v1/admin/workspaces", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Workspace>), (status = 403, body = Problem)))]
pub async fn workspaces(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Workspace>>> {
    caller.require(Action::AdministerInstallation)?;
    let limit = q.limit()?;
    let mut tx = app.store.read().await?;
    let rows = tx.list_workspaces(None, q.cursor()?.as_deref(), limit).await?;
    let roles = vec![None; rows.len()];
    Ok(Json(workspace_page(&mut tx, rows, limit, roles).await?))
}

/// Verify the hash chain of every workspace's history and the installation's;
/// report the first broken link (admins).
#[utoipa::path(get, path = "/api/v1/admin/history/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HistoryVerification), (status = 403, body = Problem)))]
pub async fn verify_history(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<HistoryVerification>> {
    caller.require(Action::AdministerInstallation)?;
    Ok(Json(to_verification(app.store.verify_history().await?)))
}

pub fn to_verification(v: canopy_store::Verification) -> HistoryVerification {
    HistoryVerification {
        ok: v.first_broken.is_none(),
        chains_checked: v.chains_checked,
        events_checked: v.events_checked,
        first_broken: v.first_broken.map(|b| BrokenLink {
            chain: b.chain,
            seq: b.seq,
            event_id: b.event_id,
            reason: b.reason,
        }),
    }
}
