//! Project Access → Current Access (AC1–AC7, FE1): the project's bindings,
//! one row per role, with the role dropdown, the expiration date and a save
//! per row, "Remove" after a confirmation, and at the bottom the type-ahead
//! over the workspace's people and groups, a role, an expiration date and
//! "+". Where the workspace needs four-eye approval, a change becomes a
//! pending request, and the page says so.

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::bindings::{BindingChange, NewBindingInput, Outcome, SubjectName};
use canopy_app::paging::Paging;
use canopy_app::workspaces::Abilities;
use canopy_domain::SubjectKind;
use serde::Deserialize;

use super::form::PageQuery;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Frame, Tab, project_crumbs, project_tabs};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

/// A change of this project's access that waits for approval, shown in place.
struct PendingRow {
    text: String,
}

struct BindingRow {
    id: String,
    name: String,
    detail: String,
    role: String,
    expires_on: String,
    expiry_class: &'static str,
    expiry_text: String,
    granted_by: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    justification: String,
}

#[derive(Template)]
#[template(path = "project/access.html")]
struct AccessPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    project: String,
    name: String,
    abilities: Abilities,
    bindings: Vec<BindingRow>,
    pending: Vec<PendingRow>,
    next: Option<String>,
    roles: Vec<(String, String)>,
    add: AddForm,
    problems: Problems,
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    (ws, project): (&str, &str),
    cursor: Option<&str>,
    add: AddForm,
    problems: Problems,
) -> UiResult {
    let paging = Paging::parse(None, cursor)?;
    let now = app.clock.now();
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let (workspace, p, _) =
        canopy_app::tenants::list(&app.store, &viewer.principal, (&workspace.identifier, project)).await?;
    let list =
        canopy_app::bindings::list(&app.store, &viewer.principal, (&workspace.identifier, &p.identifier), &paging)
            .await?;
    let pending = if abilities.manage {
        canopy_app::requests::pending_of_project(
            &app.store,
            &viewer.principal,
            (&workspace.identifier, &p.identifier),
            50,
        )
        .await?
    } else {
        vec![]
    };
    let roles: Vec<(String, String)> = canopy_app::project_roles::list(&app.store)
        .await?
        .into_iter()
        .map(|r| (r.identifier, r.display_name))
        .collect();
    let mut frame = viewer
        .frame(
            app,
            &format!("Access to {}", p.display_name),
            Some(&workspace),
            project_crumbs(&workspace, &p, "Project Access"),
        )
        .await?;
    frame.manage = abilities.manage;
    let bindings = list
        .items
        .into_iter()
        .map(|b| {
            let (expiry_class, expiry_text) = text::expiry(b.binding.expires_at, now);
            let group = b.binding.subject.kind == SubjectKind::Group;
            BindingRow {
                id: b.binding.id.to_string(),
                name: if group { format!("group: {}", b.subject_display_name) } else { b.subject_display_name.clone() },
                detail: b.subject_name.clone(),
                role: b.role_identifier.clone(),
                expires_on: b.binding.expires_at.map(text::day).unwrap_or_default(),
                expiry_class,
                expiry_text,
                granted_by: b.granted_by.clone(),
            }
        })
        .collect();
    let label = |id: &str| roles.iter().find(|(r, _)| r == id).map_or_else(|| id.to_owned(), |(_, l)| l.clone());
    let pending = pending
        .into_iter()
        .map(|v| {
            let q = v.request;
            let what = match q.kind.as_str() {
                "add" => format!("add {}", label(&q.role)),
                "change" => format!("change to {}", label(&q.role)),
                _ => format!("remove {}", label(&q.role)),
            };
            PendingRow {
                text: format!(
                    "{} (pending approval: {what}, asked by {}, “{}”)",
                    q.subject_name, q.requested_by, q.justification
                ),
            }
        })
        .collect();
    let page = AccessPage {
        frame,
        pending,
        tabs: project_tabs(&workspace.identifier, &p.identifier, "/access", abilities.manage),
        ws: workspace.identifier.clone(),
        project: p.identifier.clone(),
        name: p.display_name.clone(),
        abilities,
        bindings,
        next: list.next_cursor,
        roles,
        add,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/projects/{project}/access`: Project Access.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, project)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> UiResult {
    let add = AddForm { role: "project_reader".into(), ..AddForm::default() };
    page(&app, &viewer, (&ws, &project), q.cursor.as_deref(), add, Problems::default()).await
}

/// Who a binding is for, as the add field names it.
fn subject(raw: &str) -> SubjectName {
    let raw = raw.trim();
    match raw.strip_prefix("group:") {
        Some(g) => SubjectName::Group(g.trim().to_owned()),
        None => SubjectName::User(raw.strip_prefix("user:").unwrap_or(raw).trim().to_owned()),
    }
}

fn pending_text(what: &str, r: &canopy_app::requests::RequestView) -> String {
    let n = r.request.approvals_required;
    let approvers = if n == 1 { "another manager".to_owned() } else { format!("{n} other managers") };
    format!("{what} waits for approval by {approvers} (or an admin).")
}

/// A project role's name as people read it ("Project User").
async fn role_label(app: &AppState, identifier: &str) -> UiResult<String> {
    let roles = canopy_app::project_roles::list(&app.store).await?;
    Ok(roles.into_iter().find(|r| r.identifier == identifier).map_or_else(|| identifier.to_owned(), |r| r.display_name))
}

fn optional(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `POST .../{project}/access`: bind a person or group with a role (AC1).
pub async fn add(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<AddForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        if form.subject.trim().is_empty() {
            return Err(canopy_app::Error::invalid("subject", "type a workspace user or group and choose it"));
        }
        let input = NewBindingInput {
            subject: subject(&form.subject),
            role: form.role.trim().to_owned(),
            expires_at: text::date_field("expires_at", &form.expires_on)?,
            justification: optional(&form.justification),
        };
        canopy_app::bindings::add(&app.store, &viewer.principal, app.clock.now(), (&ws, &project), input).await
    }
    .await;
    let back = format!("/workspaces/{ws}/projects/{project}/access");
    match outcome {
        Ok(Outcome::Done(b)) => {
            let until = b.binding.expires_at.map(|t| format!(" until {}", text::day(t))).unwrap_or_default();
            let role = role_label(&app, &b.role_identifier).await?;
            Ok(done(&back, &format!("{} was added as {role}{until}.", b.subject_display_name)))
        }
        Ok(Outcome::Pending(r)) => Ok(done(&back, &pending_text("Adding this binding", &r))),
        Err(e) => match Problems::of(&e, &["subject", "role", "expires_at", "justification", "user", "group"]) {
            Some(p) => {
                let p = p.moved(&["user", "group"], "subject").moved(&["expires_at"], "expires_on");
                Ok(unprocessable(page(&app, &viewer, (&ws, &project), None, form, p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    justification: String,
    /// `expired`: back to Expired Access, where the form was.
    #[serde(default)]
    back: String,
}

/// `POST .../{project}/access/{id}`: change a binding's role or expiration (AC5, AC7).
pub async fn change(
    State(app): State<AppState>,
    Path((ws, project, id)): Path<(String, String, String)>,
    posted: Posted<ChangeForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let input = BindingChange {
            role: optional(&form.role),
            expires_at: Some(text::date_field("expires_at", &form.expires_on)?),
            justification: optional(&form.justification),
        };
        canopy_app::bindings::change(&app.store, &viewer.principal, app.clock.now(), (&ws, &project, &id), input).await
    }
    .await;
    let back = if form.back == "expired" {
        format!("/workspaces/{ws}/expired-access")
    } else {
        format!("/workspaces/{ws}/projects/{project}/access")
    };
    match outcome {
        Ok(Outcome::Done(b)) => {
            let until = b.binding.expires_at.map(|t| format!(" until {}", text::day(t))).unwrap_or_default();
            let role = role_label(&app, &b.role_identifier).await?;
            Ok(done(&back, &format!("{} now holds {role}{until}.", b.subject_display_name)))
        }
        Ok(Outcome::Pending(r)) => Ok(done(&back, &pending_text("This change", &r))),
        Err(e) => match Problems::of(&e, &[]) {
            Some(p) => {
                let add = AddForm { role: "project_reader".into(), ..AddForm::default() };
                let p = p.flattened("The change was not saved");
                Ok(unprocessable(page(&app, &viewer, (&ws, &project), None, add, p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Template)]
#[template(path = "project/remove.html")]
struct RemovePage {
    frame: Frame,
    heading: String,
    action: String,
    back: String,
}

/// `GET .../{project}/access/{id}/remove`: ask before removing, naming the
/// person and the project.
pub async fn confirm_removal(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, project, id)): Path<(String, String, String)>,
) -> UiResult {
    let b = canopy_app::bindings::show(&app.store, &viewer.principal, (&ws, &project, &id)).await?;
    let (workspace, p, _) = canopy_app::tenants::list(&app.store, &viewer.principal, (&ws, &project)).await?;
    let frame = viewer.frame(&app, "Remove access", Some(&workspace), project_crumbs(&workspace, &p, "Remove")).await?;
    let role = role_label(&app, &b.role_identifier).await?;
    let page = RemovePage {
        frame,
        heading: format!("Remove {} ({}) as {role} from {}?", b.subject_display_name, b.subject_name, p.display_name),
        action: format!("/workspaces/{}/projects/{}/access/{id}/remove", workspace.identifier, p.identifier),
        back: format!("/workspaces/{}/projects/{}/access", workspace.identifier, p.identifier),
    };
    Ok(viewer.page(&page))
}

#[derive(Debug, Default, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    justification: String,
}

/// `POST .../{project}/access/{id}/remove`: remove a binding (AC6).
pub async fn remove(
    State(app): State<AppState>,
    Path((ws, project, id)): Path<(String, String, String)>,
    posted: Posted<RemoveForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let justification = optional(&form.justification);
    let back = format!("/workspaces/{ws}/projects/{project}/access");
    match canopy_app::bindings::remove(
        &app.store,
        &viewer.principal,
        app.clock.now(),
        (&ws, &project, &id),
        justification.as_deref(),
    )
    .await?
    {
        Outcome::Done(()) => {
            Ok(done(&back, "The binding was removed; replication takes the access away from every tenant."))
        }
        Outcome::Pending(r) => Ok(done(&back, &pending_text("Removing this binding", &r))),
    }
}
