//! Workspace Access → Current Access (WS3–WS6, AC9): who is in the
//! workspace with which role, who granted it and when; for managers a role
//! dropdown and save per row, removal after a confirmation, and at the
//! bottom a type-ahead to invite a person, an e-mail address or a group.

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::members::{Invitee, MemberView};
use canopy_app::paging::Paging;
use canopy_app::workspaces::Abilities;
use canopy_domain::WorkspaceRole;
use serde::Deserialize;

use super::form::{PageQuery, Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;

struct MemberRow {
    subject: String,
    name: String,
    detail: String,
    kind: &'static str,
    role: String,
    role_label: &'static str,
    granted_by: String,
    since: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "workspace/access.html")]
struct AccessPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    abilities: Abilities,
    members: Vec<MemberRow>,
    next: Option<String>,
    roles: Vec<(&'static str, &'static str)>,
    invite: InviteForm,
    problems: Problems,
}

fn row(m: MemberView) -> MemberRow {
    let (name, detail) = match m.kind {
        "group" => (format!("group: {}", m.display_name), m.name.clone()),
        "invitation" => (m.name.clone(), "invited, no account yet".to_owned()),
        _ => (m.display_name.clone(), m.name.clone()),
    };
    MemberRow {
        subject: m.subject,
        name,
        detail,
        kind: m.kind,
        role: m.role.as_str().to_owned(),
        role_label: text::workspace_role(m.role),
        granted_by: m.granted_by,
        since: text::day(m.granted_at),
    }
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    cursor: Option<&str>,
    invite: InviteForm,
    problems: Problems,
) -> UiResult {
    let paging = Paging::parse(None, cursor)?;
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let list = canopy_app::members::list(&app.store, &viewer.principal, &workspace.identifier, &paging).await?;
    let roles = text::workspace_roles()
        .into_iter()
        .filter(|(r, _)| abilities.own || *r != WorkspaceRole::Owner.as_str())
        .collect();
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::here("Workspace Access"),
    ];
    let mut frame =
        viewer.frame(app, &format!("Access to {}", workspace.display_name), Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = AccessPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "access", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        abilities,
        members: list.items.into_iter().map(row).collect(),
        next: list.next_cursor,
        roles,
        invite,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/access`: Current Access.
pub async fn workspace(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> UiResult {
    page(
        &app,
        &viewer,
        &ws,
        q.cursor.as_deref(),
        InviteForm { role: "workspace_member".into(), ..Default::default() },
        Problems::default(),
    )
    .await
}

/// What the invite field names: `group:ID` a group, `user:NAME` or a bare
/// username a person, anything with `@` an e-mail address (an account's, or
/// an invitation that waits for one, WS3).
pub fn invitee(raw: &str) -> Invitee {
    let raw = raw.trim();
    if let Some(g) = raw.strip_prefix("group:") {
        Invitee::Group(g.trim().to_owned())
    } else if let Some(u) = raw.strip_prefix("user:") {
        Invitee::User(u.trim().to_owned())
    } else if raw.contains('@') {
        Invitee::Email(raw.strip_prefix("email:").unwrap_or(raw).to_owned())
    } else {
        Invitee::User(raw.to_owned())
    }
}

fn role_of(raw: &str) -> Result<WorkspaceRole, canopy_app::Error> {
    raw.parse().map_err(|_| canopy_app::Error::invalid("role", "choose a workspace role"))
}

/// `POST /workspaces/{ws}/access`: invite someone with a role.
pub async fn invite(State(app): State<AppState>, Path(ws): Path<String>, posted: Posted<InviteForm>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = match (form.subject.trim(), role_of(&form.role)) {
        ("", _) => Err(canopy_app::Error::invalid("subject", "type a name, username, e-mail address or group")),
        (_, Err(e)) => Err(e),
        (subject, Ok(role)) => {
            canopy_app::members::invite(
                &app.store,
                &viewer.principal,
                app.clock.now(),
                &ws,
                (invitee(subject), role),
                app.config.public_url.as_deref(),
            )
            .await
        }
    };
    match outcome {
        Ok(m) => {
            let what = if m.kind == "invitation" {
                format!("An invitation was sent to {} as {}.", m.name, text::workspace_role(m.role))
            } else {
                format!("{} was added as {}.", m.display_name, text::workspace_role(m.role))
            };
            Ok(done(&format!("/workspaces/{ws}/access"), &what))
        }
        Err(e) => match Problems::of(&e, &["subject", "role", "user", "email", "group"]) {
            Some(p) => {
                let p = p.moved(&["user", "email", "group"], "subject");
                Ok(unprocessable(page(&app, &viewer, &ws, None, form, p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /workspaces/{ws}/access/{subject}`: change a member's role (WS6).
pub async fn change_member(
    State(app): State<AppState>,
    Path((ws, subject)): Path<(String, String)>,
    posted: Posted<RoleForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let role = role_of(&form.role)?;
    let m =
        canopy_app::members::change_role(&app.store, &viewer.principal, app.clock.now(), (&ws, &subject), role).await?;
    Ok(done(
        &format!("/workspaces/{ws}/access"),
        &format!("{} is now {}.", m.display_name, text::workspace_role(m.role)),
    ))
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    frame: Frame,
    heading: String,
    message: String,
    action: String,
    button: &'static str,
    back: String,
}

/// `GET /workspaces/{ws}/access/{subject}/remove`: ask before removing.
pub async fn confirm_removal(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, subject)): Path<(String, String)>,
) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, &ws).await?;
    if !abilities.manage {
        return Err(UiError::App(canopy_app::Error::Forbidden(format!(
            "you do not manage workspace {}",
            workspace.identifier
        ))));
    }
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::link("Workspace Access", format!("/workspaces/{}/access", workspace.identifier)),
        Crumb::here("Remove"),
    ];
    let frame = viewer.frame(&app, "Remove from workspace", Some(&workspace), crumbs).await?;
    let page = ConfirmPage {
        frame,
        heading: format!("Remove {subject} from {}?", workspace.display_name),
        message: "They lose their workspace role and every binding they hold on the workspace's projects; \
                  replication takes that access away from every tenant."
            .to_owned(),
        action: format!("/workspaces/{}/access/{}/remove", workspace.identifier, urlencode(&subject)),
        button: "Remove",
        back: format!("/workspaces/{}/access", workspace.identifier),
    };
    Ok(viewer.page(&page))
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST /workspaces/{ws}/access/{subject}/remove`: remove a member (WS6).
pub async fn remove_member(
    State(app): State<AppState>,
    Path((ws, subject)): Path<(String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    canopy_app::members::remove(&app.store, &posted.viewer.principal, app.clock.now(), (&ws, &subject)).await?;
    Ok(done(&format!("/workspaces/{ws}/access"), &format!("{subject} was removed from the workspace.")))
}

/// A path segment, percent-encoded.
pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
    /// htmx sends the typed field under its own name.
    #[serde(default)]
    subject: Option<String>,
    /// Set for a field that takes members only (no e-mail invitation).
    #[serde(default)]
    members: Option<String>,
}

struct Suggestion {
    value: String,
    label: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "suggestions.html")]
struct Suggestions {
    items: Vec<Suggestion>,
    email: Option<String>,
}

/// `GET /workspaces/{ws}/access/search?q=`: the type-ahead's suggestions
/// (AC9), a fragment of HTML; an e-mail invitation when nothing matches.
pub async fn search(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<SearchQuery>,
) -> UiResult {
    let typed = q.q.clone().or(q.subject.clone()).unwrap_or_default();
    let typed = typed.trim();
    if typed.chars().count() < 2 {
        return Ok(super::render(&Suggestions { items: vec![], email: None }));
    }
    let found = if q.members.is_some() {
        canopy_app::members::search(&app.store, &viewer.principal, &ws, typed, Some(10)).await
    } else {
        canopy_app::members::candidates(&app.store, &viewer.principal, &ws, typed, Some(10)).await
    };
    let found = match found {
        Ok(f) => f,
        // what cannot be searched for suggests nothing
        Err(canopy_app::Error::Invalid(_)) => vec![],
        Err(e) => return Err(e.into()),
    };
    let items: Vec<Suggestion> = found
        .into_iter()
        .map(|r| {
            let kind = r.kind.as_str();
            Suggestion {
                value: canopy_app::load::subject_string(r.kind, &r.name),
                label: if kind == "group" { format!("group: {}", r.display_name) } else { r.display_name.clone() },
                detail: match r.email {
                    Some(e) => format!("{e} ({})", r.name),
                    None => r.name,
                },
            }
        })
        .collect();
    let email = (items.is_empty() && q.members.is_none() && canopy_domain::Email::parse(typed).is_ok())
        .then(|| typed.to_owned());
    Ok(super::render(&Suggestions { items, email }))
}
