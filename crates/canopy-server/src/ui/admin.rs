//! Administration (AD1, AD2): every workspace, with its User Pending Role
//! Requests and Workspace History among the actions (admins).

use askama::Template;
use axum::extract::{Query, State};
use canopy_app::paging::Paging;

use super::form::{PageQuery, UiResult};
use super::frame::{Crumb, Frame, Tab};
use super::session::Viewer;
use crate::AppState;

/// The tabs of the admin area; a platform engineer who is not an admin
/// sees the platforms alone.
pub fn admin_tabs(active: &str, admin: bool) -> Vec<Tab> {
    [
        ("Workspaces", "workspaces"),
        ("Users", "users"),
        ("Groups", "groups"),
        ("Platforms", "platforms"),
        ("Roles and Tags", "catalogue"),
        ("Emergency Access", "emergency"),
        ("Settings", "settings"),
    ]
    .into_iter()
    .filter(|(_, path)| admin || *path == "platforms")
    .map(|(label, path)| Tab { label, href: format!("/admin/{path}"), active: path == active })
    .collect()
}

struct Row {
    identifier: String,
    name: String,
    four_eye: String,
}

#[derive(Template)]
#[template(path = "admin/workspaces.html")]
struct WorkspacesPage {
    frame: Frame,
    tabs: Vec<Tab>,
    rows: Vec<Row>,
    next: Option<String>,
}

/// `GET /admin/workspaces`: every workspace of the installation.
pub async fn workspaces(State(app): State<AppState>, viewer: Viewer, Query(q): Query<PageQuery>) -> UiResult {
    let paging = Paging::parse(None, q.cursor.as_deref())?;
    let list = canopy_app::workspaces::list_all(&app.store, &viewer.principal, &paging).await?;
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Workspaces")];
    let frame = viewer.frame(&app, "Administration: workspaces", None, crumbs).await?;
    let rows = list
        .items
        .into_iter()
        .map(|v| Row {
            four_eye: if v.four_eye.enabled {
                format!("{} approval(s), {}", v.four_eye.approvals, v.four_eye_source.as_str())
            } else {
                "off".to_owned()
            },
            identifier: v.workspace.identifier,
            name: v.workspace.display_name,
        })
        .collect();
    Ok(viewer.page(&WorkspacesPage {
        frame,
        tabs: admin_tabs("workspaces", viewer.is_admin()),
        rows,
        next: list.next_cursor,
    }))
}
