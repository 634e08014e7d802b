//! The admin area (AD2), history verification (HI3) and checkpoints (SE7).

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use canopy_api_types::{
    BrokenLink, FieldError, HistoryCheckpoint, HistoryCheckpoints, HistoryProblem, HistoryVerification,
    MAX_CHECKPOINTS, Page, Problem, VerifyHistory, Workspace,
};
use canopy_domain::authz::Action;
use canopy_domain::checkpoint::Checkpoint;
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::mapping::workspace_page;
use crate::routes::ListQuery;

/// The largest body `POST /admin/history/verify` reads: room for
/// [`MAX_CHECKPOINTS`] checkpoints of about 400 bytes each.
pub const MAX_VERIFY_BODY: usize = 8 * 1024 * 1024;

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

/// `GET` and `POST /admin/history/verify`, the latter with a body limit that
/// fits [`MAX_CHECKPOINTS`].
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
    caller.require(Action::AdministerInstallation)?;
    Ok(Json(to_verification(app.store.verify_history(None).await?)))
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
    caller.require(Action::AdministerInstallation)?;
    if body.checkpoints.len() > MAX_CHECKPOINTS {
        return Err(ApiError::invalid(
            "checkpoints",
            format!(
                "at most {MAX_CHECKPOINTS} checkpoints at once (got {}); send them in parts",
                body.checkpoints.len()
            ),
        ));
    }
    let checkpoints: Vec<Checkpoint> = body.checkpoints.into_iter().map(from_api).collect();
    let errors: Vec<FieldError> = checkpoints
        .iter()
        .enumerate()
        .flat_map(|(i, cp)| {
            cp.invalid_fields().into_iter().map(move |(field, e)| FieldError {
                field: format!("checkpoints[{i}].{field}"),
                message: e.to_string(),
            })
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let key = app.config.history_key.public_key();
    Ok(Json(to_verification(app.store.verify_history(Some((&key, &checkpoints))).await?)))
}

/// A signed checkpoint of every chain's head now (the installation's and each
/// workspace's, deleted ones included), with the public key to check them.
/// Keep both outside Canopy: given back to `POST /admin/history/verify` later,
/// they show a chain cut short or deleted since (admins).
#[utoipa::path(get, path = "/api/v1/admin/history/checkpoints", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HistoryCheckpoints), (status = 403, body = Problem)))]
pub async fn checkpoints(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<HistoryCheckpoints>> {
    caller.require(Action::AdministerInstallation)?;
    let now = app.clock.now();
    let key = &app.config.history_key;
    let heads = app.store.chain_heads().await?;
    Ok(Json(HistoryCheckpoints {
        public_key: key.public_key().to_base64(),
        key_id: key.key_id(),
        checkpoints: heads.iter().map(|h| to_api(key.sign(h, now))).collect(),
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
