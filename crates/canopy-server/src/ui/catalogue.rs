//! Administration → Project Roles (AC4) and Tag Definitions (PR3), and the
//! workspace's Payment Methods tab with the 30-day forecast (PM1–PM3).

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::paging::Paging;
use canopy_app::payment_methods::{NewPaymentMethod, PaymentMethodChange};
use canopy_app::project_roles::{NewProjectRole, ProjectRoleChange};
use canopy_app::tag_definitions::{NewTagDefinition, TagDefinitionChange};
use canopy_domain::tags::{TagDefinition, TagKind};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab, workspace_tabs};
use super::session::{Nothing, Posted, Viewer};
use super::tags::{self, TagField};
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
        options: options(&form.options),
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
    posted: Posted<Nothing>,
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

/// `POST /admin/catalogue/roles/{role}/delete`: remove a project role no
/// platform maps and no binding or request names (AC4).
pub async fn delete_role(State(app): State<AppState>, Path(role): Path<String>, posted: Posted<Nothing>) -> UiResult {
    let viewer = posted.viewer;
    match canopy_app::project_roles::delete(&app.store, &viewer.principal, app.clock.now(), &role).await {
        Ok(()) => Ok(done("/admin/catalogue", &format!("{role} was removed."))),
        Err(e @ canopy_app::Error::Conflict { .. }) => {
            let empty_tag = (NewTag { kind: "string".into(), ..NewTag::default() }, Problems::default());
            let role = (NewRole::default(), Problems::general(e.to_string()));
            Ok(unprocessable(page(&app, &viewer, role, empty_tag).await?))
        }
        Err(e) => Err(UiError::App(e)),
    }
}

/// `POST /admin/catalogue/tags/{tag}/delete`: remove a tag definition
/// (projects keep their values, PR3).
pub async fn delete_tag(State(app): State<AppState>, Path(tag): Path<String>, posted: Posted<Nothing>) -> UiResult {
    canopy_app::tag_definitions::delete(&app.store, &posted.viewer.principal, app.clock.now(), &tag).await?;
    Ok(done("/admin/catalogue", &format!("{tag} was removed.")))
}

fn catalogue_crumbs(here: String) -> Vec<Crumb> {
    vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Roles and tags", "/admin/catalogue"),
        Crumb::here(here),
    ]
}

#[derive(Template)]
#[template(path = "admin/role.html")]
struct RolePage {
    frame: Frame,
    tabs: Vec<Tab>,
    identifier: String,
    form: NewRole,
    problems: Problems,
}

async fn role_page(app: &AppState, viewer: &Viewer, role: &str, typed: Option<(NewRole, Problems)>) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerProjectRoles).map_err(UiError::App)?;
    let r = canopy_app::project_roles::show(&app.store, role).await?;
    let frame = viewer.frame(app, &r.display_name, None, catalogue_crumbs(r.display_name.clone())).await?;
    let (form, problems) = typed.unwrap_or_else(|| {
        let form = NewRole {
            identifier: r.identifier.clone(),
            display_name: r.display_name.clone(),
            description: r.description.clone(),
        };
        (form, Problems::default())
    });
    let page =
        RolePage { frame, tabs: admin_tabs("catalogue", viewer.is_admin()), identifier: r.identifier, form, problems };
    Ok(viewer.page(&page))
}

/// `GET /admin/catalogue/roles/{role}`: a project role to change.
pub async fn show_role(State(app): State<AppState>, viewer: Viewer, Path(role): Path<String>) -> UiResult {
    role_page(&app, &viewer, &role, None).await
}

/// `POST /admin/catalogue/roles/{role}`: change a project role's name and
/// description (AC4); its identifier stays, as platforms map it.
pub async fn update_role(State(app): State<AppState>, Path(role): Path<String>, posted: Posted<NewRole>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let change = ProjectRoleChange {
        display_name: Some(form.display_name.trim().to_owned()),
        description: Some(form.description.trim().to_owned()),
    };
    match canopy_app::project_roles::update(&app.store, &viewer.principal, app.clock.now(), &role, change).await {
        Ok(r) => Ok(done("/admin/catalogue", &format!("The project role {} was saved.", r.display_name))),
        Err(e) => match Problems::of(&e, &["display_name", "description"]) {
            Some(p) => Ok(unprocessable(role_page(&app, &viewer, &role, Some((form, p))).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Template)]
#[template(path = "admin/tag.html")]
struct TagPage {
    frame: Frame,
    tabs: Vec<Tab>,
    key: String,
    kind: &'static str,
    form: NewTag,
    /// The default value's field, shaped by the tag's type.
    default: Vec<TagField>,
    problems: Problems,
}

/// The definition as the form shows it: options comma-separated, boxes as `true`.
fn tag_form(d: &TagDefinition) -> NewTag {
    let flag = |b: bool| if b { "true".to_owned() } else { String::new() };
    NewTag {
        key: d.key.clone(),
        display_name: d.display_name.clone(),
        kind: d.kind.as_str().to_owned(),
        options: d.options.join(", "),
        required: flag(d.required),
        admin_only: flag(d.admin_only),
        pattern: d.pattern.clone().unwrap_or_default(),
    }
}

/// The definition with which the default's field is drawn and read back.
fn default_definition(d: &TagDefinition) -> TagDefinition {
    TagDefinition { display_name: "Default value".into(), required: false, admin_only: false, ..d.clone() }
}

async fn tag_page(
    app: &AppState,
    viewer: &Viewer,
    tag: &str,
    typed: Option<(NewTag, Option<Value>, Problems)>,
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerInstallation).map_err(UiError::App)?;
    let d = canopy_app::tag_definitions::show(&app.store, tag).await?;
    let frame = viewer.frame(app, &d.display_name, None, catalogue_crumbs(d.display_name.clone())).await?;
    let (form, default, problems) = typed.unwrap_or_else(|| (tag_form(&d), d.default.clone(), Problems::default()));
    let shown = default_definition(&TagDefinition { default: None, ..d.clone() });
    let values: Map<String, Value> = default.map(|v| (d.key.clone(), v)).into_iter().collect();
    let mut default = tags::fields(std::slice::from_ref(&shown), &values, true, &Problems::default());
    for f in &mut default {
        f.error = problems.get("default").map(str::to_owned);
    }
    let page = TagPage {
        frame,
        tabs: admin_tabs("catalogue", viewer.is_admin()),
        key: d.key,
        kind: d.kind.as_str(),
        form,
        default,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/catalogue/tags/{tag}`: a tag definition to change.
pub async fn show_tag(State(app): State<AppState>, viewer: Viewer, Path(tag): Path<String>) -> UiResult {
    tag_page(&app, &viewer, &tag, None).await
}

/// `POST /admin/catalogue/tags/{tag}`: change a tag definition (PR3); its
/// key and type stay, projects keep their values and meet the new rules on
/// their next change.
pub async fn update_tag(State(app): State<AppState>, Path(tag): Path<String>, posted: Posted<NewTag>) -> UiResult {
    let Posted { viewer, form, fields } = posted;
    let d = canopy_app::tag_definitions::show(&app.store, &tag).await?;
    let default = tags::posted(std::slice::from_ref(&default_definition(&d)), &fields, true).remove(&d.key);
    let change = TagDefinitionChange {
        display_name: Some(form.display_name.trim().to_owned()),
        options: Some(options(&form.options)),
        required: Some(form.required == "true"),
        default: Some(default.clone()),
        admin_only: Some(form.admin_only == "true"),
        pattern: Some(Some(form.pattern.trim().to_owned()).filter(|p| !p.is_empty())),
    };
    match canopy_app::tag_definitions::update(&app.store, &viewer.principal, app.clock.now(), &tag, change).await {
        Ok(d) => Ok(done("/admin/catalogue", &format!("The tag {} was saved.", d.display_name))),
        Err(e) => {
            match Problems::of(&e, &["display_name", "options", "pattern", "required", "admin_only", "default"]) {
                Some(p) => Ok(unprocessable(tag_page(&app, &viewer, &tag, Some((form, default, p))).await?)),
                None => Err(UiError::App(e)),
            }
        }
    }
}

/// A comma-separated list of options as the use cases take it.
fn options(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect()
}
