//! The workspace control plane's Projects tab (PR1, PR2): the workspace's
//! projects, paged, and for its managers a form to create one with its
//! payment method and tags.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use canopy_app::paging::Paging;
use canopy_app::projects::NewProjectInput;
use canopy_app::workspaces::Abilities;
use canopy_domain::tags::TagDefinition;
use serde::Deserialize;
use uuid::Uuid;

use super::form::{PageQuery, Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::{Posted, Viewer};
use super::tags::{self, TagField};
use super::text;
use crate::AppState;

struct ProjectRow {
    identifier: String,
    display_name: String,
    created: String,
    deleting: bool,
}

struct MethodChoice {
    id: String,
    label: String,
    chosen: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewProject {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    payment_method: String,
}

#[derive(Template)]
#[template(path = "workspace/projects.html")]
struct ProjectsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    abilities: Abilities,
    projects: Vec<ProjectRow>,
    next: Option<String>,
    methods: Vec<MethodChoice>,
    tags: Vec<TagField>,
    new: NewProject,
    problems: Problems,
}

/// `GET /workspaces/{ws}`: the workspace control plane opens on its projects.
pub async fn workspace_root(Path(ws): Path<String>) -> Response {
    Redirect::to(&format!("/workspaces/{ws}/projects")).into_response()
}

async fn tag_definitions(app: &AppState) -> UiResult<Vec<TagDefinition>> {
    Ok(canopy_app::tag_definitions::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT)).await?.items)
}

async fn page(
    app: &AppState,
    viewer: &Viewer,
    ws: &str,
    cursor: Option<&str>,
    form: (NewProject, &serde_json::Map<String, serde_json::Value>, Problems),
) -> UiResult {
    let (new, posted_tags, problems) = form;
    let paging = Paging::parse(None, cursor)?;
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let (workspace, list) =
        canopy_app::projects::list(&app.store, &viewer.principal, &workspace.identifier, &paging).await?;
    let (methods, tags) = if abilities.manage {
        let methods = canopy_app::payment_methods::list(&app.store, &viewer.principal, &workspace.identifier).await?;
        let defs = tag_definitions(app).await?;
        let methods = methods
            .into_iter()
            .map(|m| MethodChoice {
                chosen: new.payment_method == m.id.to_string(),
                id: m.id.to_string(),
                label: format!("{} (until {})", m.name, canopy_store::format_date(m.expires_on)),
            })
            .collect();
        (methods, tags::fields(&defs, posted_tags, viewer.is_admin(), &problems))
    } else {
        (vec![], vec![])
    };
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::here("Projects"),
    ];
    let mut frame =
        viewer.frame(app, &format!("Projects of {}", workspace.display_name), Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = ProjectsPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "projects", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        abilities,
        projects: list
            .items
            .into_iter()
            .map(|p| ProjectRow {
                identifier: p.identifier,
                display_name: p.display_name,
                created: text::day(p.created_at),
                deleting: p.deletion_requested_at.is_some(),
            })
            .collect(),
        next: list.next_cursor,
        methods,
        tags,
        new,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/projects`: the Projects tab.
pub async fn list(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> UiResult {
    page(&app, &viewer, &ws, q.cursor.as_deref(), (NewProject::default(), &Default::default(), Problems::default()))
        .await
}

/// `POST /workspaces/{ws}/projects`: create a project (PR1).
pub async fn create(State(app): State<AppState>, Path(ws): Path<String>, posted: Posted<NewProject>) -> UiResult {
    let Posted { viewer, form, fields } = posted;
    let defs = tag_definitions(&app).await?;
    let tags = tags::posted(&defs, &fields, viewer.is_admin());
    let payment_method = match form.payment_method.trim() {
        "" => None,
        raw => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                let problems = Problems::of(
                    &canopy_app::Error::invalid("payment_method", "is not a payment method of this workspace"),
                    &["payment_method"],
                )
                .unwrap_or_default();
                return Ok(unprocessable(page(&app, &viewer, &ws, None, (form, &tags, problems)).await?));
            }
        },
    };
    let input = NewProjectInput {
        identifier: form.identifier.trim().to_owned(),
        display_name: form.display_name.trim().to_owned(),
        tags: tags.clone(),
        payment_method,
        substitute_payment_method: None,
    };
    match canopy_app::projects::create(&app.store, &viewer.principal, app.clock.now(), &ws, input).await {
        Ok((w, p)) => Ok(done(
            &format!("/workspaces/{}/projects/{}", w.identifier, p.identifier),
            &format!("Project {} was created.", p.display_name),
        )),
        Err(e) => {
            let mut known = vec!["identifier".to_owned(), "display_name".to_owned(), "payment_method".to_owned()];
            known.extend(defs.iter().map(|d| format!("tags.{}", d.key)));
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            match Problems::of(&e, &known) {
                Some(problems) => Ok(unprocessable(page(&app, &viewer, &ws, None, (form, &tags, problems)).await?)),
                None => Err(UiError::App(e)),
            }
        }
    }
}
