//! Administration → Project Roles (AC4) and Tag Definitions (PR3), and the
//! workspace's Payment Methods tab with the 30-day forecast (PM1–PM3).

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::paging::Paging;
use canopy_app::payment_methods::{NewPaymentMethod, PaymentMethodChange};
use canopy_app::project_roles::NewProjectRole;
use canopy_app::tag_definitions::NewTagDefinition;
use canopy_domain::tags::TagKind;
use serde::Deserialize;

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::{Posted, Viewer};
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct NewRole {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewTag {
    #[serde(default)]
    key: String,
    #[serde(default)]
    display_name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    options: String,
    #[serde(default)]
    required: String,
    #[serde(default)]
    admin_only: String,
    #[serde(default)]
    pattern: String,
}

#[derive(Template)]
#[template(path = "admin/catalogue.html")]
struct CataloguePage {
    frame: Frame,
    tabs: Vec<Tab>,
    roles: Vec<(String, String, String)>,
    tags: Vec<(String, String, String, String)>,
    kinds: Vec<&'static str>,
    role: NewRole,
    role_problems: Problems,
    tag: NewTag,
    tag_problems: Problems,
}

async fn page(app: &AppState, viewer: &Viewer, role: (NewRole, Problems), tag: (NewTag, Problems)) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerInstallation).map_err(UiError::App)?;
    let roles = canopy_app::project_roles::list(&app.store)
        .await?
        .into_iter()
        .map(|r| (r.identifier, r.display_name, r.description))
        .collect();
    let tags = canopy_app::tag_definitions::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT))
        .await?
        .items
        .into_iter()
        .map(|d| {
            let mut rules = vec![d.kind.as_str().to_owned()];
            if d.required {
                rules.push("required".into());
            }
            if d.admin_only {
                rules.push("admins only".into());
            }
            if !d.options.is_empty() {
                rules.push(format!("one of {}", d.options.join(", ")));
            }
            (d.key, d.display_name, rules.join(", "), d.pattern.unwrap_or_default())
        })
        .collect();
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Roles and tags")];
    let frame = viewer.frame(app, "Project roles and tag definitions", None, crumbs).await?;
    let page = CataloguePage {
        frame,
        tabs: admin_tabs("catalogue", viewer.is_admin()),
        roles,
        tags,
        kinds: TagKind::ALL.iter().map(|k| k.as_str()).collect(),
        role: role.0,
        role_problems: role.1,
        tag: tag.0,
        tag_problems: tag.1,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/catalogue`: project roles and tag definitions.
pub async fn show(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    let tag = NewTag { kind: "string".into(), ..NewTag::default() };
    page(&app, &viewer, (NewRole::default(), Problems::default()), (tag, Problems::default())).await
}

/// `POST /admin/catalogue/roles`: a project role (AC4).
pub async fn create_role(State(app): State<AppState>, posted: Posted<NewRole>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let input = NewProjectRole {
        identifier: form.identifier.trim().to_owned(),
        display_name: form.display_name.trim().to_owned(),
        description: form.description.trim().to_owned(),
    };
    match canopy_app::project_roles::create(&app.store, &viewer.principal, app.clock.now(), input).await {
        Ok(r) => Ok(done("/admin/catalogue", &format!("The project role {} was created.", r.display_name))),
        Err(e) => match Problems::of(&e, &["identifier", "display_name", "description"]) {
            Some(p) => {
                let tag = (NewTag { kind: "string".into(), ..NewTag::default() }, Problems::default());
                Ok(unprocessable(page(&app, &viewer, (form, p), tag).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/catalogue/tags`: a tag definition (PR3).
pub async fn create_tag(State(app): State<AppState>, posted: Posted<NewTag>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let input = NewTagDefinition {
        key: form.key.trim().to_owned(),
        display_name: form.display_name.trim().to_owned(),
        kind: form.kind.trim().to_owned(),
        options: form.options.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect(),
        required: form.required == "true",
        default: None,
        admin_only: form.admin_only == "true",
        pattern: Some(form.pattern.trim().to_owned()).filter(|p| !p.is_empty()),
    };
    match canopy_app::tag_definitions::create(&app.store, &viewer.principal, app.clock.now(), input).await {
        Ok(d) => Ok(done("/admin/catalogue", &format!("The tag {} was defined.", d.display_name))),
        Err(e) => {
            match Problems::of(&e, &["key", "display_name", "type", "options", "pattern", "required", "admin_only"]) {
                Some(p) => {
                    Ok(unprocessable(page(&app, &viewer, (NewRole::default(), Problems::default()), (form, p)).await?))
                }
                None => Err(UiError::App(e)),
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NewMethod {
    #[serde(default)]
    name: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    expires_on: String,
}

#[derive(Template)]
#[template(path = "workspace/payments.html")]
struct PaymentsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    ws_name: String,
    /// Each method: id, name, budget, expiration day.
    methods: Vec<(String, String, String, String)>,
    forecast: Vec<(String, String, String)>,
    manage: bool,
    new: NewMethod,
    problems: Problems,
}

async fn payments_page(app: &AppState, viewer: &Viewer, ws: &str, new: NewMethod, problems: Problems) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let methods = canopy_app::payment_methods::list(&app.store, &viewer.principal, &workspace.identifier)
        .await?
        .into_iter()
        .map(|m| (m.id.to_string(), m.name, format!("{:.2}", m.amount), canopy_store::format_date(m.expires_on)))
        .collect();
    let forecast = if abilities.manage {
        canopy_app::payment_methods::forecast(&app.store, &viewer.principal, app.clock.now(), &workspace.identifier)
            .await?
            .into_iter()
            .map(|f| (f.project, f.method.name, canopy_store::format_date(f.method.expires_on)))
            .collect()
    } else {
        vec![]
    };
    let crumbs = vec![
        Crumb::link(workspace.display_name.clone(), format!("/workspaces/{}", workspace.identifier)),
        Crumb::here("Payment Methods"),
    ];
    let mut frame = viewer.frame(app, "Payment Methods", Some(&workspace), crumbs).await?;
    frame.manage = abilities.manage;
    let page = PaymentsPage {
        frame,
        tabs: workspace_tabs(&workspace.identifier, "payment-methods", abilities.manage),
        ws: workspace.identifier.clone(),
        ws_name: workspace.display_name.clone(),
        methods,
        forecast,
        manage: abilities.manage,
        new,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/payment-methods`.
pub async fn payments(State(app): State<AppState>, viewer: Viewer, Path(ws): Path<String>) -> UiResult {
    payments_page(&app, &viewer, &ws, NewMethod::default(), Problems::default()).await
}

/// `POST /workspaces/{ws}/payment-methods`: add one (PM1).
pub async fn create_method(State(app): State<AppState>, Path(ws): Path<String>, posted: Posted<NewMethod>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let input = NewPaymentMethod {
            name: form.name.trim().to_owned(),
            amount: amount(&form.amount)?,
            expires_on: form.expires_on.trim().to_owned(),
            billing_data: Default::default(),
        };
        canopy_app::payment_methods::create(&app.store, &viewer.principal, app.clock.now(), &ws, input).await
    }
    .await;
    match outcome {
        Ok(m) => {
            Ok(done(&format!("/workspaces/{ws}/payment-methods"), &format!("The payment method {} was added.", m.name)))
        }
        Err(e) => match Problems::of(&e, &["name", "amount", "expires_on"]) {
            Some(p) => Ok(unprocessable(payments_page(&app, &viewer, &ws, form, p).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

fn amount(raw: &str) -> Result<f64, canopy_app::Error> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|a| a.is_finite())
        .ok_or_else(|| canopy_app::Error::invalid("amount", "give the budget as a number"))
}

/// `POST /workspaces/{ws}/payment-methods/{id}`: change a method (PM1).
pub async fn update_method(
    State(app): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    posted: Posted<NewMethod>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let change = PaymentMethodChange {
            name: Some(form.name.trim().to_owned()),
            amount: Some(amount(&form.amount)?),
            expires_on: Some(form.expires_on.trim().to_owned()),
            billing_data: None,
        };
        canopy_app::payment_methods::update(&app.store, &viewer.principal, app.clock.now(), (&ws, &id), change).await
    }
    .await;
    match outcome {
        Ok(m) => {
            Ok(done(&format!("/workspaces/{ws}/payment-methods"), &format!("The payment method {} was saved.", m.name)))
        }
        Err(e) => match Problems::of(&e, &[]) {
            Some(p) => {
                let p = p.flattened("The payment method was not saved");
                Ok(unprocessable(payments_page(&app, &viewer, &ws, NewMethod::default(), p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /workspaces/{ws}/payment-methods/{id}/delete`: remove a method no
/// project names (PM1).
pub async fn delete_method(
    State(app): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    posted: Posted<super::session::Nothing>,
) -> UiResult {
    let viewer = posted.viewer;
    match canopy_app::payment_methods::delete(&app.store, &viewer.principal, app.clock.now(), (&ws, &id)).await {
        Ok(()) => Ok(done(&format!("/workspaces/{ws}/payment-methods"), "The payment method was removed.")),
        Err(e @ canopy_app::Error::Conflict { .. }) => Ok(unprocessable(
            payments_page(&app, &viewer, &ws, NewMethod::default(), Problems::general(e.to_string())).await?,
        )),
        Err(e) => Err(UiError::App(e)),
    }
}

/// `POST /admin/catalogue/roles/{role}/delete` and `.../tags/{tag}/delete`.
pub async fn delete_entry(
    State(app): State<AppState>,
    Path((what, key)): Path<(String, String)>,
    posted: Posted<super::session::Nothing>,
) -> UiResult {
    let viewer = posted.viewer;
    let now = app.clock.now();
    let deleted = match what.as_str() {
        "roles" => canopy_app::project_roles::delete(&app.store, &viewer.principal, now, &key).await,
        "tags" => canopy_app::tag_definitions::delete(&app.store, &viewer.principal, now, &key).await,
        _ => return Err(UiError::App(canopy_app::Error::not_found("there is no page at this address"))),
    };
    match deleted {
        Ok(()) => Ok(done("/admin/catalogue", &format!("{key} was removed."))),
        Err(e @ canopy_app::Error::Conflict { .. }) => {
            let problems = (Problems::general(e.to_string()), Problems::default());
            let (role, tag) = if what == "roles" { problems } else { (problems.1, problems.0) };
            let empty_tag = NewTag { kind: "string".into(), ..NewTag::default() };
            Ok(unprocessable(page(&app, &viewer, (NewRole::default(), role), (empty_tag, tag)).await?))
        }
        Err(e) => Err(UiError::App(e)),
    }
}
