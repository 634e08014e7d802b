//! The tenant page (TN5) and the project's Deletion tab (DL1–DL5): a
//! tenant's status, external id and last error, the replication plan (what
//! would change now, drift included), "Replicate" and "Delete this tenant";
//! a project's deletion with the resources found, the confirmation by
//! typing the project's identifier, and the state of each tenant's deletion.

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::workspaces::Abilities;
use serde::Deserialize;

use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Frame, Tab, project_crumbs, project_tabs};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

/// What the plan of a tenant says, line by line.
struct PlanView {
    grant: Vec<String>,
    revoke: Vec<String>,
    drift_grant: Vec<String>,
    drift_revoke: Vec<String>,
    held: usize,
    policy: &'static str,
}

#[derive(Template)]
#[template(path = "project/tenant.html")]
struct TenantPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    project: String,
    platform: String,
    platform_type: &'static str,
    landing_zone: String,
    external_id: String,
    status: &'static str,
    last_error: String,
    /// When a failed tenant is tried again ([`text::next_attempt`]).
    next_attempt: String,
    last_replicated: String,
    deletion: Option<&'static str>,
    abilities: Abilities,
    plan: Option<PlanView>,
    plan_error: Option<String>,
}

fn lines(list: &[canopy_domain::replication::Assignment<String>]) -> Vec<String> {
    list.iter().map(|a| format!("{} as {}", a.user, a.platform_role)).collect()
}

/// `GET /workspaces/{ws}/projects/{project}/tenants/{platform}`.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, project, platform)): Path<(String, String, String)>,
) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, &ws).await?;
    let (workspace, p, t) =
        canopy_app::tenants::show(&app.store, &viewer.principal, (&workspace.identifier, &project, &platform)).await?;
    // the plan asks the platform now: its failure is shown, not the page's
    let (plan, plan_error) = if abilities.manage && t.external_id.is_some() && t.deletion.is_none() {
        match canopy_app::tenants::plan(
            &app.store,
            app.platforms.as_ref(),
            &viewer.principal,
            (&workspace.identifier, &p.identifier, &t.platform),
        )
        .await
        {
            Ok((_, preview)) => (
                Some(PlanView {
                    grant: lines(&preview.changes.grant),
                    revoke: lines(&preview.changes.revoke),
                    drift_grant: lines(&preview.drift.grant),
                    drift_revoke: lines(&preview.drift.revoke),
                    held: preview.actual.len(),
                    policy: match preview.drift_policy {
                        canopy_domain::replication::DriftPolicy::Repair => "repaired",
                        canopy_domain::replication::DriftPolicy::Report => "only reported",
                    },
                }),
                None,
            ),
            Err(canopy_app::Error::Upstream(e) | canopy_app::Error::Conflict { detail: e, .. }) => (None, Some(e)),
            Err(e) => return Err(e.into()),
        }
    } else {
        (None, None)
    };
    let mut frame = viewer
        .frame(
            &app,
            &format!("Tenant on {}", t.platform),
            Some(&workspace),
            project_crumbs(&workspace, &p, &t.platform),
        )
        .await?;
    frame.manage = abilities.manage;
    let page = TenantPage {
        frame,
        tabs: project_tabs(&workspace.identifier, &p.identifier, "", abilities.manage),
        ws: workspace.identifier.clone(),
        project: p.identifier.clone(),
        platform_type: t.platform_type.as_str(),
        landing_zone: t.landing_zone.clone().unwrap_or_default(),
        external_id: t.external_id.clone().unwrap_or_default(),
        status: t.status.as_str(),
        last_error: t.last_error.clone().unwrap_or_default(),
        next_attempt: text::next_attempt(t.status, t.next_attempt_at, app.clock.now()),
        last_replicated: t.last_replicated_at.map(text::when).unwrap_or_default(),
        deletion: t.deletion.map(|d| d.as_str()),
        platform: t.platform,
        abilities,
        plan,
        plan_error,
    };
    Ok(viewer.page(&page))
}

#[derive(Debug, Default, Deserialize)]
pub struct Nothing {}

/// `POST .../tenants/{platform}/delete`: ask to delete one tenant (DL1).
pub async fn delete(
    State(app): State<AppState>,
    Path((ws, project, platform)): Path<(String, String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    canopy_app::deletion::request(
        &app.store,
        app.platforms.as_ref(),
        &posted.viewer.principal,
        app.clock.now(),
        (&ws, &project, Some(&platform)),
    )
    .await?;
    Ok(done(
        &format!("/workspaces/{ws}/projects/{project}/deletion"),
        &format!("The deletion of the tenant on {platform} was requested; confirm it below."),
    ))
}

struct DeletionRow {
    platform: String,
    mode: &'static str,
    state: &'static str,
    resources: Vec<String>,
    last_error: String,
}

#[derive(Template)]
#[template(path = "project/deletion.html")]
struct DeletionPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    project: String,
    name: String,
    abilities: Abilities,
    requested: bool,
    /// Whether a tenant's deletion is under way: the list refreshes itself (IF4).
    busy: bool,
    tenants: Vec<DeletionRow>,
    typed: String,
    confirm_help: String,
    problems: Problems,
}

async fn deletion_page(
    app: &AppState,
    viewer: &Viewer,
    (ws, project): (&str, &str),
    typed: String,
    problems: Problems,
) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let view = canopy_app::deletion::show(&app.store, &viewer.principal, (&workspace.identifier, project)).await?;
    let requested = view.tenants.iter().any(|t| t.deletion == Some(canopy_domain::deletion::TenantDeletion::Requested));
    let busy = view.tenants.iter().any(|t| {
        matches!(
            t.deletion,
            Some(
                canopy_domain::deletion::TenantDeletion::Deleting
                    | canopy_domain::deletion::TenantDeletion::AwaitingEngineer
            )
        )
    });
    let tenants = view
        .tenants
        .iter()
        .map(|t| DeletionRow {
            platform: t.platform.clone(),
            mode: t.deletion_mode.as_str(),
            state: t.deletion.map_or("not requested", |d| match d {
                canopy_domain::deletion::TenantDeletion::Requested => "requested: waits for your confirmation",
                canopy_domain::deletion::TenantDeletion::Deleting => "being deleted by Canopy",
                canopy_domain::deletion::TenantDeletion::AwaitingEngineer => "waits for a platform engineer",
                canopy_domain::deletion::TenantDeletion::Declined => "declined: the tenant stays",
            }),
            resources: t.deletion_resources.clone(),
            last_error: t.last_error.clone().unwrap_or_default(),
        })
        .collect();
    let p = &view.project;
    let mut frame = viewer
        .frame(app, &format!("Delete {}", p.display_name), Some(&workspace), project_crumbs(&workspace, p, "Deletion"))
        .await?;
    frame.manage = abilities.manage;
    let page = DeletionPage {
        frame,
        tabs: project_tabs(&workspace.identifier, &p.identifier, "/deletion", abilities.manage),
        ws: workspace.identifier.clone(),
        project: p.identifier.clone(),
        name: p.display_name.clone(),
        abilities,
        requested,
        busy,
        tenants,
        typed,
        confirm_help: format!("the identifier is {}", p.identifier),
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/projects/{project}/deletion`: the Deletion tab.
pub async fn deletion(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, project)): Path<(String, String)>,
) -> UiResult {
    deletion_page(&app, &viewer, (&ws, &project), String::new(), Problems::default()).await
}

/// `POST .../deletion/request`: ask to delete the project (DL1): its
/// automatic tenants are checked for resources first (DL2).
pub async fn request(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    let outcome = canopy_app::deletion::request(
        &app.store,
        app.platforms.as_ref(),
        &posted.viewer.principal,
        app.clock.now(),
        (&ws, &project, None),
    )
    .await?;
    match outcome {
        Some(_) => Ok(done(
            &format!("/workspaces/{ws}/projects/{project}/deletion"),
            "The deletion was requested. Remove any resources listed, then confirm by typing the project's identifier.",
        )),
        None => Ok(done(&format!("/workspaces/{ws}/projects"), &format!("Project {project} was deleted."))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    identifier: String,
}

/// `POST .../deletion/confirm`: confirm by typing the identifier (DL2).
pub async fn confirm(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<ConfirmForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let confirmed = canopy_app::deletion::confirm(
        &app.store,
        app.platforms.as_ref(),
        &viewer.principal,
        app.clock.now(),
        (&ws, &project),
        form.identifier.trim(),
    )
    .await;
    match confirmed {
        Ok(_) => Ok(done(
            &format!("/workspaces/{ws}/projects/{project}/deletion"),
            "The deletion was confirmed: automatic tenants are deleted now, the others wait for a platform engineer.",
        )),
        Err(e) => match Problems::of(&e, &["identifier"]) {
            Some(p) => Ok(unprocessable(deletion_page(&app, &viewer, (&ws, &project), form.identifier, p).await?)),
            None => Err(UiError::App(e)),
        },
    }
}
