//! Workspace History (HI1, HI2): a workspace's events, newest first, paged,
//! filtered by kind, person and time; each event's full record behind its
//! Details button. The same page is the admin area's "Workspace History".

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::history::HistoryQuery;
use canopy_app::paging::Paging;
use canopy_domain::history::{ChainedEvent, EventKind};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::form::{Problems, UiError, UiResult};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::Viewer;
use super::text;
use crate::AppState;

struct EventRow {
    id: String,
    when: String,
    kind: String,
    by: String,
    summary: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "workspace/history.html")]
struct HistoryPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    kinds: Vec<&'static str>,
    filter: HistoryForm,
    rows: Vec<EventRow>,
    next: Option<String>,
    problems: Problems,
}

fn at(e: &ChainedEvent) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_us) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

/// One line of what an event's details say: whom it concerned, the project,
/// the role and its change.
fn summary(details: &str) -> String {
    let Ok(Value::Object(d)) = serde_json::from_str::<Value>(details) else { return String::new() };
    let pick = |keys: &[&str]| keys.iter().find_map(|k| d.get(*k).filter(|v| !v.is_null()).map(plain));
    let mut parts = Vec::new();
    if let Some(s) = pick(&["subject", "user", "email", "group", "recipient"]) {
        parts.push(s);
    }
    if let Some(p) = pick(&["project"]) {
        parts.push(format!("on {p}"));
    }
    match (pick(&["from_role", "old_role"]), pick(&["role", "to_role", "new_role"])) {
        (Some(from), Some(to)) if from != to => parts.push(format!("{from} → {to}")),
        (_, Some(role)) => parts.push(format!("as {role}")),
        _ => {}
    }
    if parts.is_empty()
        && let Some(n) = pick(&["display_name", "platform", "identifier", "workspace"])
    {
        parts.push(n);
    }
    parts.join(" ")
}

/// `GET /workspaces/{ws}/history?kind=&person=&from=&to=&cursor=`.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(filter): Query<HistoryForm>,
) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, &ws).await?;
    let query = async {
        let until = text::date_field("to", &filter.to)?.map(|t| t + time::Duration::days(1));
        Ok::<_, canopy_app::Error>(HistoryQuery {
            since: text::date_field("from", &filter.from)?,
            until,
            initiator: Some(filter.person.trim().to_owned()).filter(|p| !p.is_empty()),
            kind: Some(filter.kind.trim().to_owned()).filter(|k| !k.is_empty()),
        })
    }
    .await;
    let listed = match query {
        Ok(query) => {
            let paging = Paging::parse(None, filter.cursor.as_deref())?;
            canopy_app::history::of_workspace(&app.store, &viewer.principal, &workspace.identifier, query, &paging)
                .await
        }
        Err(e) => Err(e),
    };
    let (rows, next, problems) = match listed {
        Ok(page) => {
            let rows = page
                .items
                .iter()
                .map(|e| EventRow {
                    id: e.id.clone(),
                    when: text::when(at(e)),
                    kind: e.kind.clone(),
                    by: e.initiator_name.clone(),
                    summary: summary(&e.details),
                })
                .collect();
            (rows, page.next_cursor, Problems::default())
        }
        Err(e) => match Problems::of(&e, &["kind", "person", "from", "to", "initiator", "since", "until"]) {
            Some(p) => {
                (vec![], None, p.moved(&["initiator"], "person").moved(&["since"], "from").moved(&["until"], "to"))
            }
            None => return Err(UiError::App(e)),
        },
    };
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::here("History"),
    ];
    let mut frame = viewer.frame(&app, "Workspace History", Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = HistoryPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "history", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        kinds: EventKind::ALL.iter().map(|k| k.as_str()).collect(),
        filter,
        rows,
        next,
        problems,
    };
    Ok(viewer.page(&page))
}

#[derive(Template)]
#[template(path = "workspace/event.html")]
struct EventPage {
    frame: Frame,
    ws: String,
    kind: String,
    when: String,
    initiator: String,
    initiator_kind: String,
    seq: i64,
    hash: String,
    details: Vec<(String, String)>,
}

/// `GET /workspaces/{ws}/history/{id}`: one event's full record (Details).
pub async fn event(State(app): State<AppState>, viewer: Viewer, Path((ws, id)): Path<(String, String)>) -> UiResult {
    let e = canopy_app::history::event(&app.store, &viewer.principal, &ws, &id).await?;
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, &ws).await?;
    let details = match serde_json::from_str::<Value>(&e.details) {
        Ok(Value::Object(d)) => d.iter().map(|(k, v)| (k.replace('_', " "), plain(v))).collect(),
        _ => vec![("details".to_owned(), e.details.clone())],
    };
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::link("History", format!("/workspaces/{}/history", workspace.identifier)),
        Crumb::here(e.kind.clone()),
    ];
    let mut frame = viewer.frame(&app, &format!("Event {}", e.kind), Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = EventPage {
        frame,
        ws: workspace.identifier.clone(),
        when: text::when(at(&e)),
        kind: e.kind.clone(),
        initiator: e.initiator_name.clone(),
        initiator_kind: e.initiator_kind.clone(),
        seq: e.seq,
        hash: e.hash.clone(),
        details,
    };
    Ok(viewer.page(&page))
}
