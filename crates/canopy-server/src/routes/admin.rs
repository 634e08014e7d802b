//! The admin area (AD2), history verification (HI3) and checkpoints (SE7).

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use canopy_api_types::{
    BrokenLink, HistoryCheckpoint, HistoryCheckpoints, HistoryProblem, HistoryVerification, Page, Problem,
    VerifyHistory, Workspace,
};
use canopy_domain::checkpoint::Checkpoint;
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::mapping::to_workspace;
use crate::routes::{ListQuery, to_page};

/// The largest body `POST /admin/history/verify` reads: room for
/// [`canopy_api_types::MAX_CHECKPOINTS`] checkpoints of about 400 bytes each.
pub const MAX_VERIFY_BODY: usize = 8 * 1024 * 1024;

/// Every workspace of the installation (admins).
#[utoipa::path(get, path = "/api/v1/admin/workspaces", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Workspace>), (status = 403, body = Problem)))]
pub async fn workspaces(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Workspace>>> {
    let paging = q.paging()?;
    Ok(Json(to_page(canopy_app::workspaces::list_all(&app.store, &caller, &paging).await?, to_workspace)))
}

/// `GET` and `POST /admin/history/verify`, the latter with a body limit that
/// fits [`canopy_api_types::MAX_CHECKPOINTS`].
pub fn verify_routes() -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, router) = routes!(verify_history, verify_checkpoints);
    (schemas, paths, router.layer(DefaultBodyLimit::max(MAX_VERIFY_BODY)))
}

/// Verify the hash chain of every workspace's history and the installation's,
/// and that every workspace has its chain and every chain the installation
/// recorded as created still exists; report what is wrong (admins).
#[utoipa::path(get, path = "/api/v1/admin/history/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HistoryVerification), (status = 403, body = Problem)))]
pub async fn verify_history(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<HistoryVerification>> {
    let key = &app.config.history_key;
    Ok(Json(to_verification(canopy_app::history::verify(&app.store, &caller, key, None).await?)))
}

/// Verify the history as `GET` does, and that every checkpoint given (from
/// `GET /admin/history/checkpoints`, earlier) is signed by this
/// installation's key unchanged and still contained in its chain: the chain
/// exists, reaches the checkpoint's `seq`, and its event there has the
/// checkpoint's `hash`. A truncated or deleted chain, or a forged or changed
/// checkpoint, is a problem of the answer (`ok: false`), not an error (admins).
#[utoipa::path(post, path = "/api/v1/admin/history/verify", tag = "admin", request_body = VerifyHistory,
    security(("bearer" = [])),
    responses((status = 200, body = HistoryVerification), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn verify_checkpoints(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyHistory>,
) -> ApiResult<Json<HistoryVerification>> {
    let checkpoints = body.checkpoints.into_iter().map(from_api).collect();
    let key = &app.config.history_key;
    Ok(Json(to_verification(canopy_app::history::verify(&app.store, &caller, key, Some(checkpoints)).await?)))
}

/// A signed checkpoint of every chain's head now (the installation's and each
/// workspace's, deleted ones included), with the public key to check them.
/// Keep both outside Canopy: given back to `POST /admin/history/verify` later,
/// they show a chain cut short or deleted since (admins).
#[utoipa::path(get, path = "/api/v1/admin/history/checkpoints", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HistoryCheckpoints), (status = 403, body = Problem)))]
pub async fn checkpoints(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<HistoryCheckpoints>> {
    let key = &app.config.history_key;
    let signed = canopy_app::history::checkpoints(&app.store, &caller, key, app.clock.now()).await?;
    Ok(Json(HistoryCheckpoints {
        public_key: key.public_key().to_base64(),
        key_id: key.key_id(),
        checkpoints: signed.into_iter().map(to_api).collect(),
    }))
}

pub fn to_api(cp: Checkpoint) -> HistoryCheckpoint {
    HistoryCheckpoint {
        chain: cp.chain,
        label: cp.label,
        seq: cp.seq,
        hash: cp.hash,
        at: cp.at,
        key_id: cp.key_id,
        signature: cp.signature,
    }
}

pub fn from_api(cp: HistoryCheckpoint) -> Checkpoint {
    Checkpoint {
        chain: cp.chain,
        label: cp.label,
        seq: cp.seq,
        hash: cp.hash,
        at: cp.at,
        key_id: cp.key_id,
        signature: cp.signature,
    }
}

pub fn to_verification(v: canopy_store::Verification) -> HistoryVerification {
    let problems: Vec<HistoryProblem> = v
        .problems
        .into_iter()
        .map(|p| HistoryProblem {
            code: p.code.to_owned(),
            chain: p.chain,
            chain_id: p.chain_id,
            seq: p.seq,
            event_id: p.event_id,
            reason: p.reason,
        })
        .collect();
    HistoryVerification {
        ok: problems.is_empty(),
        chains_checked: v.chains_checked,
        events_checked: v.events_checked,
        checkpoints_checked: v.checkpoints_checked,
        first_broken: problems.first().map(|p| BrokenLink {
            chain: p.chain.clone(),
            seq: p.seq.unwrap_or(0),
            event_id: p.event_id.clone(),
            reason: p.reason.clone(),
        }),
        problems,
    }
}
