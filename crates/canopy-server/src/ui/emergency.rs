//! Administration → Emergency Access (AD3, AD4): one form to grant a person
//! a project role until a date, and one action to revoke everything a
//! person holds, confirmed by typing their username, whose receipt fills
//! in, per tenant, as the platforms confirm each removal (IF4).

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::emergency::{GrantInput, RevokeInput};
use canopy_app::paging::Paging;
use serde::Deserialize;

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    person: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    justification: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    person: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    justification: String,
}

#[derive(Template)]
#[template(path = "admin/emergency.html")]
struct EmergencyPage {
    frame: Frame,
    tabs: Vec<Tab>,
    workspaces: Vec<(String, String)>,
    roles: Vec<(String, String)>,
    grant: GrantForm,
    grant_problems: Problems,
    revoke: RevokeForm,
    revoke_problems: Problems,
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    grant: (GrantForm, Problems),
    revoke: (RevokeForm, Problems),
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerInstallation).map_err(UiError::App)?;
    let workspaces =
        canopy_app::workspaces::list_all(&app.store, &viewer.principal, &Paging::first(canopy_app::paging::MAX_LIMIT))
            .await?
            .items
            .into_iter()
            .map(|v| (v.workspace.identifier, v.workspace.display_name))
            .collect();
    let roles = canopy_app::project_roles::list(&app.store)
        .await?
        .into_iter()
        .map(|r| (r.identifier, r.display_name))
        .collect();
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Emergency Access")];
    let frame = viewer.frame(app, "Emergency Access", None, crumbs).await?;
    let page = EmergencyPage {
        frame,
        tabs: admin_tabs("emergency", viewer.is_admin()),
        workspaces,
        roles,
        grant: grant.0,
        grant_problems: grant.1,
        revoke: revoke.0,
        revoke_problems: revoke.1,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/emergency`.
pub async fn show(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    let grant = GrantForm { role: "project_admin".into(), ..GrantForm::default() };
    page(&app, &viewer, (grant, Problems::default()), (RevokeForm::default(), Problems::default())).await
}

/// A person as typed: an e-mail address or a username.
fn person(raw: &str) -> (Option<String>, Option<String>) {
    let raw = raw.trim();
    if raw.contains('@') { (None, Some(raw.to_owned())) } else { (Some(raw.to_owned()), None) }
}

/// `POST /admin/emergency/grant`: grant in one step (AD3), then to the
/// project, whose tenants show the replication as it happens.
pub async fn grant(State(app): State<AppState>, posted: Posted<GrantForm>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        // what is missing, all at once, before anything is looked up
        let missing: Vec<canopy_app::FieldError> = [
            ("person", &form.person, "name the person by username or e-mail"),
            ("workspace", &form.workspace, "choose the workspace"),
            ("project", &form.project, "give the project's identifier"),
        ]
        .into_iter()
        .filter(|(_, v, _)| v.trim().is_empty())
        .map(|(f, _, m)| canopy_app::FieldError::new(f, m))
        .collect();
        if !missing.is_empty() {
            return Err(canopy_app::Error::Invalid(missing));
        }
        let (user, email) = person(&form.person);
        let input = GrantInput {
            user,
            email,
            workspace: form.workspace.trim().to_owned(),
            project: form.project.trim().to_owned(),
            role: form.role.trim().to_owned(),
            expires_at: text::date_field("expires_at", &form.expires_on)?,
            justification: Some(form.justification.trim().to_owned()).filter(|j| !j.is_empty()),
        };
        canopy_app::emergency::grant(&app.store, &viewer.principal, app.clock.now(), input).await
    }
    .await;
    match outcome {
        Ok(g) => {
            let until = g.expires_at.map(|t| format!(" until {}", text::day(t))).unwrap_or_default();
            Ok(done(
                &format!("/workspaces/{}/projects/{}", g.workspace, g.project),
                &format!(
                    "Emergency access: {} holds {} on {}{until}; its tenants replicate it now.",
                    g.user, g.role, g.project
                ),
            ))
        }
        Err(e) => {
            let known = [
                "person",
                "workspace",
                "project",
                "role",
                "expires_on",
                "justification",
                "user",
                "email",
                "expires_at",
            ];
            match Problems::of(&e, &known) {
                Some(p) => {
                    let p = p.moved(&["user", "email"], "person").moved(&["expires_at"], "expires_on");
                    let empty = (RevokeForm::default(), Problems::default());
                    Ok(unprocessable(page(&app, &viewer, (form, p), empty).await?))
                }
                None => Err(UiError::App(e)),
            }
        }
    }
}

/// `POST /admin/emergency/revoke`: take everything away (AD4), confirmed
/// by typing the username, then to the receipt.
pub async fn revoke(State(app): State<AppState>, posted: Posted<RevokeForm>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = if form.person.trim().is_empty() || form.confirm.trim() != form.person.trim() {
        Err(canopy_app::Error::invalid("confirm", "type the person's username (or e-mail) exactly as above to confirm"))
    } else {
        let (user, email) = person(&form.person);
        let justification = Some(form.justification.trim().to_owned()).filter(|j| !j.is_empty());
        canopy_app::emergency::revoke(
            &app.store,
            &viewer.principal,
            app.clock.now(),
            RevokeInput { user, email, justification },
        )
        .await
    };
    match outcome {
        Ok(report) => Ok(done(
            &format!("/admin/emergency/revocations/{}", report.record.id),
            &format!("{}'s access was revoked and the account deactivated.", report.record.username),
        )),
        Err(e) => match Problems::of(&e, &["person", "confirm", "justification", "user", "email"]) {
            Some(p) => {
                let p = p.moved(&["user", "email"], "person");
                let empty = (GrantForm { role: "project_admin".into(), ..GrantForm::default() }, Problems::default());
                Ok(unprocessable(page(&app, &viewer, empty, (form, p)).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

struct ReceiptRow {
    workspace: String,
    project: String,
    platform: String,
    external_id: String,
    role: String,
    confirmed: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/receipt.html")]
struct ReceiptPage {
    frame: Frame,
    tabs: Vec<Tab>,
    id: String,
    username: String,
    initiator: String,
    at: String,
    justification: String,
    removed: Vec<String>,
    rows: Vec<ReceiptRow>,
    waiting: usize,
}

/// `GET /admin/emergency/revocations/{id}`: the receipt, filling in as the
/// platforms confirm (the page refreshes itself while any removal waits).
pub async fn receipt(State(app): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let report = canopy_app::emergency::revocation(&app.store, &viewer.principal, &id).await?;
    let r = report.record;
    let rows: Vec<ReceiptRow> = r
        .held
        .iter()
        .map(|h| ReceiptRow {
            workspace: h.workspace.clone(),
            project: h.project.clone(),
            platform: h.platform.clone(),
            external_id: h.external_id.clone().unwrap_or_default(),
            role: h.platform_role.clone(),
            confirmed: report.confirmed.get(&(h.tenant_id, h.platform_role.clone())).map(|t| text::when(*t)),
        })
        .collect();
    let removed = match &r.removed {
        serde_json::Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| match v {
                serde_json::Value::Array(items) => {
                    items.iter().map(|i| format!("{}: {}", k.replace('_', " "), compact(i))).collect()
                }
                other => vec![format!("{}: {}", k.replace('_', " "), compact(other))],
            })
            .collect(),
        other => vec![compact(other)],
    };
    let crumbs = vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Emergency Access", "/admin/emergency"),
        Crumb::here("Receipt"),
    ];
    let frame = viewer.frame(&app, "Emergency revocation", None, crumbs).await?;
    let waiting = rows.iter().filter(|r| r.confirmed.is_none()).count();
    let page = ReceiptPage {
        frame,
        tabs: admin_tabs("emergency", viewer.is_admin()),
        id: r.id.to_string(),
        username: r.username.clone(),
        initiator: r.initiator.clone(),
        at: text::when(r.requested_at),
        justification: r.justification.clone().unwrap_or_default(),
        removed,
        rows,
        waiting,
    };
    Ok(viewer.page(&page))
}

/// A JSON value in one line of words: an object's values joined.
fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{} {}", k.replace('_', " "), compact(v)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
