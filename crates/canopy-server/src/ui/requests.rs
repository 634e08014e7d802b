//! Pending Requests (FE2, FE3): a workspace's four-eye requests waiting for
//! a decision, each approved or declined (with a reason) in place. The same
//! page is the admin area's "User Pending Role Requests" (AD2): an admin
//! approves alone, so an emergency never waits for absent managers.

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::paging::Paging;
use canopy_app::requests::RequestView;
use canopy_domain::four_eye::RequestState;
use serde::Deserialize;

use super::form::{PageQuery, Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

struct RequestRow {
    id: String,
    what: String,
    project: String,
    subject: String,
    role: String,
    expires: String,
    requested_by: String,
    requested_at: String,
    justification: String,
    approvals: String,
    mine: bool,
    needs_admin: bool,
}

#[derive(Template)]
#[template(path = "workspace/requests.html")]
struct RequestsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    rows: Vec<RequestRow>,
    next: Option<String>,
    problems: Problems,
}

fn row(v: RequestView, me: uuid::Uuid) -> RequestRow {
    let q = v.request;
    let what = match q.kind.as_str() {
        "add" => "add",
        "change" => "change",
        _ => "remove",
    };
    let role = match (&q.from_role, q.kind.as_str()) {
        (Some(from), "change") if *from != q.role => format!("{from} → {}", q.role),
        _ => q.role.clone(),
    };
    RequestRow {
        id: q.id.to_string(),
        what: what.to_owned(),
        project: q.project.clone(),
        subject: q.subject_name.clone(),
        role,
        expires: q.expires_at.map_or_else(|| "never".to_owned(), text::day),
        mine: q.requested_by_id == me,
        requested_by: q.requested_by.clone(),
        requested_at: text::when(q.requested_at),
        justification: q.justification.clone(),
        approvals: format!("{} of {}", q.approvals.len(), q.approvals_required),
        needs_admin: v.needs_admin,
    }
}

async fn page(app: &AppState, viewer: &Viewer, ws: &str, cursor: Option<&str>, problems: Problems) -> UiResult {
    let paging = Paging::parse(None, cursor)?;
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let list = canopy_app::requests::list(
        &app.store,
        &viewer.principal,
        &workspace.identifier,
        Some(RequestState::Pending),
        &paging,
    )
    .await?;
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::here("Pending Requests"),
    ];
    let mut frame = viewer.frame(app, "Pending Requests", Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let me = viewer.principal.actor.id;
    let page = RequestsPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "requests", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        rows: list.items.into_iter().map(|v| row(v, me)).collect(),
        next: list.next_cursor,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/requests`: the requests waiting for a decision.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> UiResult {
    page(&app, &viewer, &ws, q.cursor.as_deref(), Problems::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct Decision {
    #[serde(default)]
    reason: String,
}

/// `POST /workspaces/{ws}/requests/{id}/approve` and `.../decline`.
pub async fn decide(
    State(app): State<AppState>,
    Path((ws, id, verdict)): Path<(String, String, String)>,
    posted: Posted<Decision>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let now = app.clock.now();
    let decided = match verdict.as_str() {
        "approve" => canopy_app::requests::approve(&app.store, &viewer.principal, now, (&ws, &id), reason).await,
        "decline" => canopy_app::requests::decline(&app.store, &viewer.principal, now, (&ws, &id), reason).await,
        _ => return Err(UiError::App(canopy_app::Error::not_found("there is no page at this address"))),
    };
    match decided {
        Ok(v) => {
            let q = v.request;
            let message = match q.state {
                RequestState::Approved => format!("The request for {} was approved and applied.", q.subject_name),
                RequestState::Declined => format!("The request for {} was declined.", q.subject_name),
                RequestState::Void => {
                    format!("The request for {} could no longer be applied; it ended void.", q.subject_name)
                }
                RequestState::Pending => format!(
                    "Your approval of the request for {} was counted; it waits for {} more.",
                    q.subject_name,
                    q.approvals_required.saturating_sub(u32::try_from(q.approvals.len()).unwrap_or(u32::MAX))
                ),
            };
            Ok(done(&format!("/workspaces/{ws}/requests"), &message))
        }
        Err(e @ (canopy_app::Error::Forbidden(_) | canopy_app::Error::Conflict { .. })) => {
            Ok(unprocessable(page(&app, &viewer, &ws, None, Problems::general(e.to_string())).await?))
        }
        Err(e) => match Problems::of(&e, &[]) {
            Some(p) => {
                Ok(unprocessable(page(&app, &viewer, &ws, None, p.flattened("The decision was not saved")).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}
