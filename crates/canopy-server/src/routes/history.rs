//! A workspace's history (HI1, HI2).

use axum::Json;
use axum::extract::State;
use canopy_api_types::{HistoryEvent, Initiator, Page, Problem};
use canopy_app::history as uc;
use canopy_app::paging::Paging;
use canopy_domain::history::ChainedEvent;
use canopy_store::from_us;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath as Path, ApiQuery};

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
        details: match serde_json::from_str::<&serde_json::value::RawValue>(&e.details) {
            Ok(raw) => raw.to_owned(),
            // not JSON (never written so): shown as the text it is
            Err(_) => serde_json::value::to_raw_value(&e.details)
                .map_err(|err| ApiError::Internal(format!("event details: {err}")))?,
        },
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
    let (query, paging) = q.parse()?;
    api_page(uc::of_workspace(&app.store, &caller, &ws, query, &paging).await?)
}

impl HistoryQuery {
    /// The application's query and the page these parameters ask for.
    fn parse(self) -> ApiResult<(uc::HistoryQuery, Paging)> {
        let paging = Paging::parse(self.limit, self.cursor.as_deref())?;
        Ok((
            uc::HistoryQuery { since: self.since, until: self.until, initiator: self.initiator, kind: self.kind },
            paging,
        ))
    }
}

/// A page of events as the API's list body.
fn api_page(p: canopy_app::paging::Page<ChainedEvent>) -> ApiResult<Json<Page<HistoryEvent>>> {
    let items = p.items.into_iter().map(to_event).collect::<ApiResult<_>>()?;
    Ok(Json(Page { items, next_cursor: p.next_cursor }))
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
    let (query, paging) = q.parse()?;
    api_page(uc::of_installation(&app.store, &caller, query, &paging).await?)
}

/// One event with its details.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/history/{event}", tag = "history", params(("ws" = String, Path), ("event" = Uuid, Path)),
    security(("bearer" = [])), responses((status = 200, body = HistoryEvent), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path((ws, event)): Path<(String, String)>,
) -> ApiResult<Json<HistoryEvent>> {
    Ok(Json(to_event(uc::event(&app.store, &caller, &ws, &event).await?)?))
}
