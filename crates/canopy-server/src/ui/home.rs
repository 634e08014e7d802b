//! Home: my workspaces and projects; for managers, access that expires soon
//! (AC12) and requests waiting for their decision (FE2); a new workspace.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use canopy_domain::authz::Action;
use serde::Deserialize;

use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::Frame;
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

struct WorkspaceRow {
    identifier: String,
    display_name: String,
    role: &'static str,
    requests: u64,
}

struct ProjectRow {
    workspace: String,
    project: String,
    roles: String,
}

struct Notice {
    workspace: String,
    project: String,
    subject: String,
    role: String,
    class: &'static str,
    text: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewWorkspace {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    display_name: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    frame: Frame,
    workspaces: Vec<WorkspaceRow>,
    projects: Vec<ProjectRow>,
    notices: Vec<Notice>,
    can_create: bool,
    new: NewWorkspace,
    problems: Problems,
}

async fn page(app: &AppState, viewer: &Viewer, new: NewWorkspace, problems: Problems) -> UiResult {
    let now = app.clock.now();
    let me = canopy_app::me::me(&app.store, &viewer.principal, now).await?;
    let frame = viewer.frame(app, "Home", None, vec![]).await?;
    let page = HomePage {
        frame,
        workspaces: me
            .workspaces
            .into_iter()
            .map(|w| WorkspaceRow {
                identifier: w.workspace.identifier,
                display_name: w.workspace.display_name,
                role: text::workspace_role(w.role),
                requests: w.requests_to_decide,
            })
            .collect(),
        projects: me
            .projects
            .into_iter()
            .map(|p| ProjectRow { workspace: p.workspace, project: p.project, roles: p.roles.join(", ") })
            .collect(),
        notices: me
            .notices
            .into_iter()
            .map(|n| {
                let (class, text) = text::expiry(Some(n.expires_at), now);
                Notice {
                    workspace: n.workspace,
                    project: n.project,
                    subject: n.binding.subject_display_name.clone(),
                    role: n.binding.role_identifier.clone(),
                    class,
                    text,
                }
            })
            .collect(),
        can_create: viewer.principal.require(Action::CreateWorkspace).is_ok(),
        new,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /`: the signed-in home.
pub async fn show(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    page(&app, &viewer, NewWorkspace::default(), Problems::default()).await
}

/// `POST /`: create a workspace (WS1); its creator becomes its owner.
pub async fn create_workspace(State(app): State<AppState>, posted: Posted<NewWorkspace>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let made = canopy_app::workspaces::create(
        &app.store,
        &viewer.principal,
        app.clock.now(),
        (form.identifier.trim(), form.display_name.trim()),
    )
    .await;
    match made {
        Ok(ws) => Ok(done(
            &format!("/workspaces/{}/projects", ws.workspace.identifier),
            &format!("Workspace {} was created; you are its owner.", ws.workspace.display_name),
        )),
        Err(e) => match Problems::of(&e, &["identifier", "display_name"]) {
            Some(problems) => Ok(unprocessable(page(&app, &viewer, form, problems).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct Switch {
    #[serde(default)]
    ws: String,
}

/// `GET /switch?ws=`: the workspace switcher's choice (a form, so that it
/// works without JavaScript).
pub async fn switch(_viewer: Viewer, Query(q): Query<Switch>) -> Response {
    let ok = !q.ws.is_empty() && q.ws.len() <= 64 && q.ws.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Redirect::to(&format!("/workspaces/{}/projects", q.ws)).into_response()
    } else {
        Redirect::to("/").into_response()
    }
}
