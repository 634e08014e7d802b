//! A workspace's history (HI1, HI2).

use axum::Json;
use axum::extract::State;
use canopy_api_types::{HistoryEvent, Initiator, Page, Problem};
use canopy_domain::authz::Action;
use canopy_domain::history::{ChainedEvent, EventKind};
use canopy_store::{HistoryFilter, INSTALLATION_CHAIN, Tx, from_us};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath as Path, ApiQuery};
use crate::routes::{check_limit, decode_cursor, load_workspace, page};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only events at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Only events before this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
    /// Only events by this initiator (username, API key name or system job).
    pub initiator: Option<String>,
    /// Only events of this kind, e.g. `binding_created`.
    pub kind: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub fn to_event(e: ChainedEvent) -> ApiResult<HistoryEvent> {
    Ok(HistoryEvent {
        id: uuid::Uuid::parse_str(&e.id).map_err(|err| ApiError::Internal(format!("event id: {err}")))?,
        seq: e.seq,
        kind: e.kind,
        at: from_us(e.at_us)?,
        initiator: Initiator { kind: e.initiator_kind, name: e.initiator_name },
        details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::String(e.details)),
    })
}

/// Page through a workspace's history, newest first, filtered by time,
/// initiator and kind (managers, admins).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/history", tag = "history", params(("ws" = String, Path), HistoryQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<HistoryEvent>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<HistoryEvent>>> {
    let (filter, limit) = q.parse()?;
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewHistory).await?;
    chain_page(&mut tx, &ws.id.to_string(), &filter, limit).await
}

impl HistoryQuery {
    /// The store filter and page size these parameters ask for.
    fn parse(self) -> ApiResult<(HistoryFilter, u32)> {
        let limit = check_limit(self.limit)?;
        let kind = self
            .kind
            .as_deref()
            .map(str::parse::<EventKind>)
            .transpose()
            .map_err(|e| ApiError::invalid("kind", e.to_string()))?;
        let before_seq = decode_cursor(self.cursor.as_deref())?
            .map(|c| c.parse::<i64>().map_err(|_| ApiError::invalid("cursor", "is not a cursor this API returned")))
            .transpose()?;
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            return Err(ApiError::invalid("until", "must be after since"));
        }
        Ok((HistoryFilter { since: self.since, until: self.until, initiator: self.initiator, kind, before_seq }, limit))
    }
}

/// One page of a chain's events, newest first.
async fn chain_page(
    tx: &mut Tx,
    chain: &str,
    filter: &HistoryFilter,
    limit: u32,
) -> ApiResult<Json<Page<HistoryEvent>>> {
    let rows = tx.history(chain, filter, limit).await?;
    let p = page(rows, limit, |e| e.seq.to_string(), to_event);
    Ok(Json(Page { items: p.items.into_iter().collect::<ApiResult<_>>()?, next_cursor: p.next_cursor }))
}

/// Page through the installation's own history: users, groups, project roles
/// and installation API keys (admins). Same filters as a workspace's history.
#[utoipa::path(get, path = "/api/v1/admin/history", tag = "admin", params(HistoryQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<HistoryEvent>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn installation(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<HistoryEvent>>> {
    caller.require(Action::AdministerInstallation)?;
    let (filter, limit) = q.parse()?;
    let mut tx = app.store.read().await?;
    chain_page(&mut tx, INSTALLATION_CHAIN, &filter, limit).await
}

/// One event with its details.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/history/{event}", tag = "history", params(("ws" = String, Path), ("event" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = HistoryEvent), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, event)): Path<(String, String)>,
) -> ApiResult<Json<HistoryEvent>> {
    let mut tx = app.store.read().await?;
    let ws = load_workspace(&mut tx, &ws).await?;
    caller.require_in(&mut tx, &ws, Action::ViewHistory).await?;
    let e = tx
        .history_event(&ws.id.to_string(), &event)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {event:?} is not in the history of {}", ws.identifier)))?;
    Ok(Json(to_event(e)?))
}
