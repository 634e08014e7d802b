//! The frame around every page: the workspace switcher, the main links,
//! the viewer's menu, the breadcrumb and the flash message.

use canopy_store::WorkspaceRecord;

use super::assets;
use super::form::UiResult;
use super::session::Viewer;
use crate::AppState;

/// How many workspaces the switcher offers; the rest are reached from the
/// home page or the admin area.
const SWITCHER: u32 = 200;

/// A workspace the switcher offers.
#[derive(Debug, Clone)]
pub struct Choice {
    pub identifier: String,
    pub label: String,
}

/// One step of the breadcrumb; the last has no link.
#[derive(Debug, Clone)]
pub struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

impl Crumb {
    pub fn link(label: impl Into<String>, href: impl Into<String>) -> Self {
        Crumb { label: label.into(), href: Some(href.into()) }
    }

    pub fn here(label: impl Into<String>) -> Self {
        Crumb { label: label.into(), href: None }
    }
}

/// What the frame of a page shows.
#[derive(Debug, Clone)]
pub struct Frame {
    pub user: String,
    /// Bindings expiring soon in the workspaces the viewer manages (AC12)
    /// and requests waiting for their decision (FE2): the count beside the name.
    pub notices: u64,
    pub admin: bool,
    /// Registers platforms and confirms tenant deletions (AD5), without
    /// being an admin: the menu leads to the platforms.
    pub platform_engineer: bool,
    pub csrf: String,
    pub workspaces: Vec<Choice>,
    /// The workspace the page belongs to (selected in the switcher).
    pub current: Option<String>,
    pub flash: Option<String>,
    pub crumbs: Vec<Crumb>,
    pub title: String,
    /// Whether the viewer manages the page's workspace (its manager links show).
    pub manage: bool,
    pub css: &'static str,
    pub js: &'static str,
    pub htmx: &'static str,
}

impl Frame {
    /// Whether `identifier` is the page's workspace.
    pub fn is_current(&self, identifier: &str) -> bool {
        self.current.as_deref() == Some(identifier)
    }
}

impl Viewer {
    /// The frame of a page titled `title`, in workspace `current` if any.
    pub async fn frame(
        &self,
        app: &AppState,
        title: &str,
        current: Option<&WorkspaceRecord>,
        crumbs: Vec<Crumb>,
    ) -> UiResult<Frame> {
        let workspaces = canopy_app::workspaces::switchable(&app.store, &self.principal, SWITCHER).await?;
        let me = canopy_app::me::me(&app.store, &self.principal, app.clock.now()).await?;
        let notices = u64::try_from(me.notices.len())
            .unwrap_or(u64::MAX)
            .saturating_add(me.workspaces.iter().map(|w| w.requests_to_decide).fold(0, u64::saturating_add));
        let mut choices: Vec<Choice> = workspaces
            .into_iter()
            .map(|w| Choice { label: format!("{} ({})", w.display_name, w.identifier), identifier: w.identifier })
            .collect();
        // an admin may look at a workspace beyond the switcher's first ones
        if let Some(ws) = current
            && !choices.iter().any(|c| c.identifier == ws.identifier)
        {
            choices.push(Choice {
                label: format!("{} ({})", ws.display_name, ws.identifier),
                identifier: ws.identifier.clone(),
            });
        }
        Ok(Frame {
            user: self.principal.actor.name.clone(),
            notices,
            admin: self.is_admin(),
            platform_engineer: !self.is_admin()
                && self.principal.require(canopy_domain::authz::Action::AdministerPlatforms).is_ok(),
            csrf: self.csrf.clone(),
            workspaces: choices,
            current: current.map(|w| w.identifier.clone()),
            flash: self.flash.clone(),
            crumbs,
            title: title.to_owned(),
            manage: false,
            css: assets::CSS,
            js: assets::JS,
            htmx: assets::HTMX,
        })
    }
}

/// A tab of a control plane.
#[derive(Debug, Clone)]
pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

/// The tabs of the workspace control plane, as the seeds name them; those
/// for managers only to those who manage it.
pub fn workspace_tabs(ws: &str, active: &str, manage: bool) -> Vec<Tab> {
    let tabs: &[(&'static str, &str, bool)] = &[
        ("Projects", "projects", false),
        ("Workspace Access", "access", false),
        ("Pending Requests", "requests", true),
        ("Expired Access", "expired-access", true),
        ("Payment Methods", "payment-methods", false),
        ("History", "history", true),
    ];
    tabs.iter()
        .filter(|(_, _, managers)| manage || !managers)
        .map(|(label, path, _)| Tab { label, href: format!("/workspaces/{ws}/{path}"), active: *path == active })
        .collect()
}

/// The tabs of the project control plane, as the seeds name them; Deletion
/// for those who manage it.
pub fn project_tabs(ws: &str, project: &str, active: &str, manage: bool) -> Vec<Tab> {
    let tabs: &[(&'static str, &str, bool)] =
        &[("Overview", "", false), ("Project Access", "/access", false), ("Deletion", "/deletion", true)];
    tabs.iter()
        .filter(|(_, _, managers)| manage || !managers)
        .map(|(label, path, _)| Tab {
            label,
            href: format!("/workspaces/{ws}/projects/{project}{path}"),
            active: *path == active,
        })
        .collect()
}

/// The breadcrumb of a project's pages.
pub fn project_crumbs(ws: &canopy_store::WorkspaceRecord, p: &canopy_store::ProjectRecord, here: &str) -> Vec<Crumb> {
    vec![
        Crumb::link(ws.display_name.clone(), format!("/workspaces/{}", ws.identifier)),
        Crumb::link("Projects", format!("/workspaces/{}/projects", ws.identifier)),
        Crumb::link(p.display_name.clone(), format!("/workspaces/{}/projects/{}", ws.identifier, p.identifier)),
        Crumb::here(here),
    ]
}
