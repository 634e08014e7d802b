//! Projects → Expired Access (AC8): a workspace's bindings that have expired
//! (red) or expire within 7 days (yellow), the state also in words, each
//! extendable in place (managers).

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::paging::Paging;
use canopy_domain::SubjectKind;
use serde::Deserialize;

use super::form::UiResult;
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::Viewer;
use super::text;
use crate::AppState;

struct Row {
    project: String,
    id: String,
    name: String,
    role: String,
    class: &'static str,
    text: String,
    expires_on: String,
}

#[derive(Template)]
#[template(path = "workspace/expired.html")]
struct ExpiredPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    rows: Vec<Row>,
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExpiredQuery {
    cursor: Option<String>,
}

/// `GET /workspaces/{ws}/expired-access`.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<ExpiredQuery>,
) -> UiResult {
    let now = app.clock.now();
    let paging = Paging::parse(None, q.cursor.as_deref())?;
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, &ws).await?;
    let list = canopy_app::expired_access::of_workspace(
        &app.store,
        &viewer.principal,
        now,
        &workspace.identifier,
        None,
        &paging,
    )
    .await?;
    let roles = canopy_app::project_roles::list(&app.store).await?;
    let rows = list
        .items
        .into_iter()
        .map(|e| {
            let (class, text) = text::expiry(Some(e.expires_at), now);
            let b = &e.binding;
            let group = b.binding.subject.kind == SubjectKind::Group;
            Row {
                id: b.binding.id.to_string(),
                name: if group { format!("group: {}", b.subject_display_name) } else { b.subject_display_name.clone() },
                role: roles
                    .iter()
                    .find(|r| r.identifier == b.role_identifier)
                    .map_or_else(|| b.role_identifier.clone(), |r| r.display_name.clone()),
                class,
                text,
                expires_on: text::day(e.expires_at),
                project: e.project,
            }
        })
        .collect();
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::link("Projects", format!("/workspaces/{}/projects", workspace.identifier)),
        Crumb::here("Expired Access"),
    ];
    let mut frame = viewer.frame(&app, "Expired Access", Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = ExpiredPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "expired-access", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        rows,
        next: list.next_cursor,
    };
    Ok(viewer.page(&page))
}
