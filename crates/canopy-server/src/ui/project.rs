//! The project control plane (PR2, TN3, TN5, PM2, PR3): its tenants with
//! their replication status, last error and "Replicate"; below them the
//! workspace's platforms in a dropdown and "+" to add a tenant; the payment
//! method and its substitute; the tags.

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::paging::Paging;
use canopy_app::projects::ProjectChange;
use canopy_app::tenants::NewTenantInput;
use canopy_app::workspaces::Abilities;
use serde::Deserialize;
use uuid::Uuid;

use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Frame, Tab, project_crumbs, project_tabs};
use super::session::{Posted, Viewer};
use super::tags::{self, TagField};
use super::text;
use crate::AppState;

struct TenantRow {
    platform: String,
    platform_type: String,
    landing_zone: String,
    external_id: String,
    status: &'static str,
    last_error: String,
    /// When a failed tenant is tried again ([`text::next_attempt`]).
    next_attempt: String,
    last_replicated: String,
    deletion: Option<&'static str>,
}

struct Option2 {
    value: String,
    label: String,
    chosen: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantForm {
    #[serde(default)]
    platform: String,
    #[serde(default)]
    landing_zone: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PaymentForm {
    #[serde(default)]
    payment_method: String,
    #[serde(default)]
    substitute_payment_method: String,
}

/// Which form of the page is shown again, with what was typed and its problems.
#[derive(Default)]
struct Forms {
    tenant: TenantForm,
    tenant_problems: Problems,
    payment: Option<PaymentForm>,
    payment_problems: Problems,
    tags: Option<serde_json::Map<String, serde_json::Value>>,
    tag_problems: Problems,
}

#[derive(Template)]
#[template(path = "project/overview.html")]
struct OverviewPage {
    frame: Frame,
    tabs: Vec<Tab>,
    ws: String,
    project: String,
    name: String,
    abilities: Abilities,
    tenants: Vec<TenantRow>,
    /// Whether a tenant is still being replicated: the list refreshes itself (IF4).
    busy: bool,
    platforms: Vec<Option2>,
    zones: Vec<Option2>,
    methods: Vec<Option2>,
    substitutes: Vec<Option2>,
    payment_label: String,
    substitute_label: String,
    tags: Vec<TagField>,
    tag_summary: Vec<(String, String)>,
    forms: Forms,
}

async fn page(app: &AppState, viewer: &Viewer, (ws, project): (&str, &str), forms: Forms) -> UiResult {
    let (workspace, abilities) = canopy_app::workspaces::abilities(&app.store, &viewer.principal, ws).await?;
    let (workspace, p, tenants) =
        canopy_app::tenants::list(&app.store, &viewer.principal, (&workspace.identifier, project)).await?;
    let methods = canopy_app::payment_methods::list(&app.store, &viewer.principal, &workspace.identifier).await?;
    let defs =
        canopy_app::tag_definitions::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT)).await?.items;
    let name_of = |id: Option<Uuid>| {
        id.and_then(|id| methods.iter().find(|m| m.id == id)).map_or("none".to_owned(), |m| m.name.clone())
    };
    let (method_now, substitute_now) = match &forms.payment {
        Some(f) => (f.payment_method.clone(), f.substitute_payment_method.clone()),
        None => (
            p.payment_method_id.map(|i| i.to_string()).unwrap_or_default(),
            p.substitute_payment_method_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
    };
    let method_options = |chosen: &str| -> Vec<Option2> {
        methods
            .iter()
            .map(|m| Option2 {
                value: m.id.to_string(),
                label: format!("{} (until {})", m.name, canopy_store::format_date(m.expires_on)),
                chosen: chosen == m.id.to_string(),
            })
            .collect()
    };
    let (platforms, zones) = if abilities.manage {
        let list =
            canopy_app::platform_registry::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT)).await?;
        let mut zones = Vec::new();
        let mut platforms = Vec::new();
        for v in list.items {
            let id = v.platform.identifier.clone();
            if tenants.iter().any(|t| t.platform == id) {
                continue;
            }
            for z in canopy_app::platform_registry::landing_zones(&app.store, &id).await? {
                let value = format!("{id}/{}", z.zone.identifier);
                zones.push(Option2 {
                    label: format!("{id}: {}", z.zone.display_name),
                    chosen: forms.tenant.landing_zone == value,
                    value,
                });
            }
            platforms.push(Option2 {
                label: format!(
                    "{id} ({}{})",
                    v.platform.platform_type.as_str(),
                    if v.platform.landing_zone_required { ", needs a landing zone" } else { "" }
                ),
                chosen: forms.tenant.platform == id,
                value: id,
            });
        }
        (platforms, zones)
    } else {
        (vec![], vec![])
    };
    let admin = viewer.is_admin();
    let tag_values = forms.tags.clone().unwrap_or_else(|| p.tags.clone());
    let tag_summary = defs
        .iter()
        .filter_map(|d| {
            let v = p.tags.get(&d.key)?;
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            Some((d.display_name.clone(), shown))
        })
        .collect();
    let mut frame =
        viewer.frame(app, &p.display_name, Some(&workspace), project_crumbs(&workspace, &p, "Overview")).await?;
    frame.manage = abilities.manage;
    let busy = tenants.iter().any(|t| {
        matches!(
            t.status,
            canopy_domain::replication::TenantStatus::Pending | canopy_domain::replication::TenantStatus::InProgress
        )
    });
    let page = OverviewPage {
        busy,
        tabs: project_tabs(&workspace.identifier, &p.identifier, "", abilities.manage),
        ws: workspace.identifier.clone(),
        project: p.identifier.clone(),
        name: p.display_name.clone(),
        tenants: tenants
            .into_iter()
            .map(|t| TenantRow {
                platform_type: t.platform_type.as_str().to_owned(),
                landing_zone: t.landing_zone.unwrap_or_default(),
                external_id: t.external_id.unwrap_or_default(),
                status: t.status.as_str(),
                last_error: t.last_error.unwrap_or_default(),
                next_attempt: text::next_attempt(t.status, t.next_attempt_at, app.clock.now()),
                last_replicated: t.last_replicated_at.map(text::when).unwrap_or_default(),
                deletion: t.deletion.map(|d| d.as_str()),
                platform: t.platform,
            })
            .collect(),
        platforms,
        zones,
        methods: method_options(&method_now),
        substitutes: method_options(&substitute_now),
        payment_label: name_of(p.payment_method_id),
        substitute_label: name_of(p.substitute_payment_method_id),
        tags: tags::fields(&defs, &tag_values, admin, &forms.tag_problems),
        tag_summary,
        abilities,
        frame,
        forms,
    };
    Ok(viewer.page(&page))
}

/// `GET /workspaces/{ws}/projects/{project}`: the project control plane.
pub async fn show(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((ws, project)): Path<(String, String)>,
) -> UiResult {
    page(&app, &viewer, (&ws, &project), Forms::default()).await
}

/// `POST .../{project}/tenants`: add a tenant on a platform (TN3).
pub async fn add_tenant(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<TenantForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    // the landing zone field names `PLATFORM/ZONE`
    let landing_zone = match form.landing_zone.split_once('/') {
        Some((_, zone)) if !zone.is_empty() => Some(zone.to_owned()),
        _ => None,
    };
    let input = NewTenantInput { platform: form.platform.trim().to_owned(), landing_zone };
    let made =
        canopy_app::tenants::create(&app.store, &viewer.principal, app.clock.now(), (&ws, &project), input).await;
    match made {
        Ok((_, _, t)) => Ok(done(
            &format!("/workspaces/{ws}/projects/{project}"),
            &format!("A tenant on {} was added; replication creates it now.", t.platform),
        )),
        Err(e) => match Problems::of(&e, &["platform", "landing_zone"]) {
            Some(p) => {
                let forms = Forms { tenant: form, tenant_problems: p, ..Forms::default() };
                Ok(unprocessable(page(&app, &viewer, (&ws, &project), forms).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST .../{project}/tenants/{platform}/replicate`: replicate now (TN5).
pub async fn replicate(
    State(app): State<AppState>,
    Path((ws, project, platform)): Path<(String, String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    canopy_app::tenants::replicate(&app.store, &posted.viewer.principal, app.clock.now(), (&ws, &project, &platform))
        .await?;
    Ok(done(
        &format!("/workspaces/{ws}/projects/{project}"),
        &format!("The tenant on {platform} replicates again now."),
    ))
}

fn method_id(field: &str, raw: &str) -> Result<Option<Uuid>, canopy_app::Error> {
    match raw.trim() {
        "" => Ok(None),
        raw => Uuid::parse_str(raw)
            .map(Some)
            .map_err(|_| canopy_app::Error::invalid(field, "is not a payment method of this workspace")),
    }
}

/// `POST .../{project}/payment`: the payment method and its substitute (PM2).
pub async fn payment(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<PaymentForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let change = ProjectChange {
            payment_method: Some(method_id("payment_method", &form.payment_method)?),
            substitute_payment_method: Some(method_id("substitute_payment_method", &form.substitute_payment_method)?),
            ..ProjectChange::default()
        };
        canopy_app::projects::update(&app.store, &viewer.principal, app.clock.now(), (&ws, &project), change).await
    }
    .await;
    match outcome {
        Ok(_) => Ok(done(&format!("/workspaces/{ws}/projects/{project}"), "The payment method was saved.")),
        Err(e) => match Problems::of(&e, &["payment_method", "substitute_payment_method"]) {
            Some(p) => {
                let forms = Forms { payment: Some(form), payment_problems: p, ..Forms::default() };
                Ok(unprocessable(page(&app, &viewer, (&ws, &project), forms).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST .../{project}/tags`: the project's tags (PR3).
pub async fn save_tags(
    State(app): State<AppState>,
    Path((ws, project)): Path<(String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    let Posted { viewer, fields, .. } = posted;
    let defs =
        canopy_app::tag_definitions::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT)).await?.items;
    let values = tags::posted(&defs, &fields, viewer.is_admin());
    let change = ProjectChange { tags: Some(values.clone()), ..ProjectChange::default() };
    match canopy_app::projects::update(&app.store, &viewer.principal, app.clock.now(), (&ws, &project), change).await {
        Ok(_) => Ok(done(&format!("/workspaces/{ws}/projects/{project}"), "The tags were saved.")),
        Err(e) => {
            let known: Vec<String> = defs.iter().map(|d| format!("tags.{}", d.key)).collect();
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            match Problems::of(&e, &known) {
                Some(p) => {
                    let forms = Forms { tags: Some(values), tag_problems: p, ..Forms::default() };
                    Ok(unprocessable(page(&app, &viewer, (&ws, &project), forms).await?))
                }
                None => Err(UiError::App(e)),
            }
        }
    }
}
