//! Administration → Platforms (TN1, TN2, AD5, DL3): the registered platforms
//! with their role mappings; a form to register one (settings and secrets
//! as `KEY=VALUE` lines, secrets write-only); per platform its landing
//! zones and the tenant deletions waiting for a platform engineer, each
//! confirmed (done by hand) or declined.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::paging::Paging;
use canopy_app::platform_registry::{LandingZoneChange, NewLandingZone, NewPlatformInput, PlatformChange};
use canopy_domain::platforms::PlatformType;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab};
use super::session::{Nothing, Posted, Viewer};
use crate::AppState;

/// `KEY=VALUE` lines as a map, or the field error naming the line.
fn key_values(field: &str, raw: &str) -> Result<BTreeMap<String, String>, canopy_app::FieldError> {
    let mut out = BTreeMap::new();
    let mut lines = raw.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(canopy_app::FieldError::new(field, format!("line {}: write KEY=VALUE", n + 1)));
        };
        let (k, mut v) = (k.trim().to_owned(), v.trim().to_owned());
        // a value pasted as it comes, over several lines: a PEM block (a CA
        // certificate) to its END line, a JSON object (a key file) to where it parses
        let pem = v.starts_with("-----BEGIN ");
        let json = v.starts_with('{') && serde_json::from_str::<Value>(&v).is_err();
        if pem || json {
            let done = |v: &str| {
                if pem {
                    v.lines().last().is_some_and(|l| l.starts_with("-----END "))
                } else {
                    serde_json::from_str::<Value>(v).is_ok()
                }
            };
            while !done(&v) {
                let Some((_, more)) = lines.next() else {
                    let what = if pem { "PEM block (-----END ...-----)" } else { "JSON object" };
                    return Err(canopy_app::FieldError::new(
                        field,
                        format!("line {}: the {what} of {k} does not end", n + 1),
                    ));
                };
                v.push('\n');
                v.push_str(more.trim_end());
            }
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// The settings, secrets and role mapping text areas, every bad line named at once.
type Areas = (BTreeMap<String, String>, BTreeMap<String, String>, BTreeMap<String, String>);
fn areas(settings: &str, secrets: &str, role_mapping: &str) -> Result<Areas, canopy_app::Error> {
    let parsed = [("settings", settings), ("secrets", secrets), ("role_mapping", role_mapping)]
        .map(|(f, raw)| key_values(f, raw));
    let errors: Vec<canopy_app::FieldError> = parsed.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    match parsed {
        [Ok(a), Ok(b), Ok(c)] => Ok((a, b, c)),
        _ => Err(canopy_app::Error::Invalid(errors)),
    }
}

fn json_map(m: BTreeMap<String, String>) -> Map<String, Value> {
    m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

/// A landing zone's `KEY=VALUE` lines: a value written as a JSON object or
/// list (`permission_sets={"Dev": [...]}`, `quota={"pods": "10"}`) is that
/// JSON, any other value a string; a malformed object or list is named.
fn zone_settings(raw: &str) -> Result<Map<String, Value>, canopy_app::Error> {
    let lines = key_values("settings", raw).map_err(|e| canopy_app::Error::Invalid(vec![e]))?;
    let mut out = Map::new();
    for (k, v) in lines {
        let value = if v.starts_with('{') || v.starts_with('[') {
            serde_json::from_str(&v).map_err(|e| {
                canopy_app::Error::invalid("settings", format!("{k}: not a valid JSON object or list ({e})"))
            })?
        } else {
            Value::String(v)
        };
        out.insert(k, value);
    }
    Ok(out)
}

/// Settings as `KEY=VALUE` lines, objects and lists as JSON (as
/// [`zone_settings`] reads them; a platform's are strings).
fn settings_lines(settings: &Map<String, Value>) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect::<Vec<_>>()
        .join("\n")
}

struct PlatformRow {
    identifier: String,
    platform_type: &'static str,
    deletion: &'static str,
    zone_required: bool,
    mapping: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewPlatform {
    #[serde(default)]
    identifier: String,
    #[serde(default, rename = "type")]
    platform_type: String,
    #[serde(default)]
    settings: String,
    #[serde(default)]
    secrets: String,
    #[serde(default)]
    role_mapping: String,
    #[serde(default)]
    landing_zone_required: String,
    #[serde(default)]
    deletion: String,
}

#[derive(Template)]
#[template(path = "admin/platforms.html")]
struct PlatformsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    rows: Vec<PlatformRow>,
    types: Vec<&'static str>,
    /// The text areas: field, label, help, what was typed.
    areas: Vec<(&'static str, &'static str, &'static str, String)>,
    new: NewPlatform,
    problems: Problems,
}

async fn platforms_page(app: &AppState, viewer: &Viewer, new: NewPlatform, problems: Problems) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerPlatforms).map_err(UiError::App)?;
    let list = canopy_app::platform_registry::list(&app.store, &Paging::first(canopy_app::paging::MAX_LIMIT)).await?;
    let rows = list
        .items
        .into_iter()
        .map(|v| PlatformRow {
            identifier: v.platform.identifier.clone(),
            platform_type: v.platform.platform_type.as_str(),
            deletion: v.platform.deletion.as_str(),
            zone_required: v.platform.landing_zone_required,
            mapping: v.role_mapping.iter().map(|(k, v)| format!("{k} → {v}")).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Platforms")];
    let frame = viewer.frame(app, "Platforms", None, crumbs).await?;
    let types = PlatformType::ALL.iter().map(|t| t.as_str()).collect();
    let areas = vec![
        (
            "settings",
            "Settings",
            "one KEY=VALUE per line, e.g. auth_url=https://keystone.example/v3; a certificate pasted as it is (ca_cert=-----BEGIN ...)",
            new.settings.clone(),
        ),
        (
            "secrets",
            "Secrets",
            "one KEY=VALUE per line, a key file pasted as it is (service_account_key={ ... }); never shown again",
            new.secrets.clone(),
        ),
        ("role_mapping", "Role mapping", "one PROJECT_ROLE=PLATFORM_ROLE per line", new.role_mapping.clone()),
    ];
    Ok(viewer.page(&PlatformsPage {
        frame,
        tabs: admin_tabs("platforms", viewer.is_admin()),
        rows,
        types,
        areas,
        new,
        problems,
    }))
}

/// `GET /admin/platforms`.
pub async fn list(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    let new = NewPlatform { platform_type: "openstack".into(), ..NewPlatform::default() };
    platforms_page(&app, &viewer, new, Problems::default()).await
}

/// `POST /admin/platforms`: register a platform (TN1, AD5).
pub async fn create(State(app): State<AppState>, posted: Posted<NewPlatform>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let (settings, secrets, role_mapping) = areas(&form.settings, &form.secrets, &form.role_mapping)?;
        let input = NewPlatformInput {
            identifier: form.identifier.trim().to_owned(),
            platform_type: form.platform_type.trim().to_owned(),
            settings: json_map(settings),
            secrets: json_map(secrets),
            role_mapping,
            landing_zone_required: form.landing_zone_required == "true",
            deletion: Some(form.deletion.trim().to_owned()).filter(|d| !d.is_empty()),
            drift_policy: None,
        };
        canopy_app::platform_registry::create(
            &app.store,
            &app.config.secret_key,
            &viewer.principal,
            app.clock.now(),
            input,
        )
        .await
    }
    .await;
    match outcome {
        Ok(v) => Ok(done(
            &format!("/admin/platforms/{}", v.platform.identifier),
            &format!("The platform {} was registered.", v.platform.identifier),
        )),
        Err(e) => {
            let known =
                ["identifier", "type", "settings", "secrets", "role_mapping", "deletion", "landing_zone_required"];
            match Problems::of(&e, &known) {
                Some(p) => {
                    // secrets are never sent back
                    let form = NewPlatform { secrets: String::new(), ..form };
                    Ok(unprocessable(platforms_page(&app, &viewer, form, p).await?))
                }
                None => Err(UiError::App(e)),
            }
        }
    }
}

struct DeletionRow {
    id: String,
    workspace: String,
    project: String,
    external_id: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewZone {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    settings: String,
}

#[derive(Template)]
#[template(path = "admin/platform.html")]
struct PlatformPage {
    frame: Frame,
    tabs: Vec<Tab>,
    identifier: String,
    platform_type: &'static str,
    settings: Vec<(String, String)>,
    secret_names: String,
    mapping: Vec<(String, String)>,
    zones: Vec<(String, String)>,
    deletions: Vec<DeletionRow>,
    zone: NewZone,
    problems: Problems,
    /// The change form: what it shows (or what was typed) and its problems.
    change: ChangeForm,
    change_problems: Problems,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    settings: String,
    #[serde(default)]
    secrets: String,
    #[serde(default)]
    role_mapping: String,
    #[serde(default)]
    landing_zone_required: String,
    #[serde(default)]
    deletion: String,
}

async fn platform_page(
    app: &AppState,
    viewer: &Viewer,
    platform: &str,
    (zone, problems): (NewZone, Problems),
    change: Option<(ChangeForm, Problems)>,
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerPlatforms).map_err(UiError::App)?;
    let v = canopy_app::platform_registry::show(&app.store, platform).await?;
    let zones = canopy_app::platform_registry::landing_zones(&app.store, platform).await?;
    let deletions = canopy_app::deletion::awaiting_engineer(&app.store, &viewer.principal, platform).await?;
    let crumbs = vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Platforms", "/admin/platforms"),
        Crumb::here(v.platform.identifier.clone()),
    ];
    let frame = viewer.frame(app, &v.platform.identifier, None, crumbs).await?;
    let (change, change_problems) = change.unwrap_or_else(|| {
        let form = ChangeForm {
            settings: settings_lines(&v.platform.settings),
            secrets: String::new(),
            role_mapping: v.role_mapping.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"),
            landing_zone_required: if v.platform.landing_zone_required { "true".into() } else { String::new() },
            deletion: v.platform.deletion.as_str().to_owned(),
        };
        (form, Problems::default())
    });
    let page = PlatformPage {
        change,
        change_problems,
        frame,
        tabs: admin_tabs("platforms", viewer.is_admin()),
        platform_type: v.platform.platform_type.as_str(),
        settings: v
            .platform
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        secret_names: v.platform.secret_names.join(", "),
        mapping: v.role_mapping.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        zones: zones.into_iter().map(|z| (z.zone.identifier, z.zone.display_name)).collect(),
        deletions: deletions
            .into_iter()
            .map(|(t, ws, project)| DeletionRow {
                id: t.id.to_string(),
                workspace: ws,
                project,
                external_id: t.external_id.unwrap_or_default(),
            })
            .collect(),
        identifier: v.platform.identifier,
        zone,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/platforms/{platform}`.
pub async fn show(State(app): State<AppState>, viewer: Viewer, Path(platform): Path<String>) -> UiResult {
    platform_page(&app, &viewer, &platform, (NewZone::default(), Problems::default()), None).await
}

/// `POST /admin/platforms/{platform}/landing-zones`: add a landing zone (TN2).
pub async fn create_zone(
    State(app): State<AppState>,
    Path(platform): Path<String>,
    posted: Posted<NewZone>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let input = NewLandingZone {
            identifier: form.identifier.trim().to_owned(),
            display_name: form.display_name.trim().to_owned(),
            settings: zone_settings(&form.settings)?,
        };
        canopy_app::platform_registry::create_landing_zone(
            &app.store,
            &viewer.principal,
            app.clock.now(),
            &platform,
            input,
        )
        .await
    }
    .await;
    match outcome {
        Ok(z) => Ok(done(
            &format!("/admin/platforms/{platform}"),
            &format!("The landing zone {} was added.", z.zone.display_name),
        )),
        Err(e) => match Problems::of(&e, &["identifier", "display_name", "settings"]) {
            Some(p) => Ok(unprocessable(platform_page(&app, &viewer, &platform, (form, p), None).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/platforms/{platform}/deletions/{id}/{verdict}`: a platform
/// engineer confirms a tenant deleted by hand, or declines (DL3, DL5).
pub async fn decide_deletion(
    State(app): State<AppState>,
    Path((platform, id, verdict)): Path<(String, String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    let by = &posted.viewer.principal;
    let id = Uuid::parse_str(&id).map_err(|_| UiError::App(canopy_app::Error::not_found("no such tenant deletion")))?;
    let now = app.clock.now();
    let message = match verdict.as_str() {
        "confirm" => {
            let r =
                canopy_app::deletion::engineer_confirm(&app.store, app.platforms.as_ref(), by, now, (&platform, id))
                    .await?;
            match r.platform_error {
                Some(e) => format!(
                    "The tenant of {} was forgotten; the platform could not confirm every removal: {e}",
                    r.project
                ),
                None => format!(
                    "The tenant of {} is deleted; {} assignment(s) were revoked first.",
                    r.project,
                    r.revoked.len()
                ),
            }
        }
        "decline" => {
            canopy_app::deletion::engineer_decline(&app.store, by, now, (&platform, id)).await?;
            "The deletion was declined: the tenant stays.".to_owned()
        }
        _ => return Err(UiError::App(canopy_app::Error::not_found("there is no page at this address"))),
    };
    Ok(done(&format!("/admin/platforms/{platform}"), &message))
}

/// `POST /admin/platforms/{platform}`: change a platform (TN1): its settings
/// (a changed address needs the secrets again, SE4), secrets given rotate,
/// the others stay; role mapping; landing zones; deletion.
pub async fn update(State(app): State<AppState>, Path(platform): Path<String>, posted: Posted<ChangeForm>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let (settings, secrets, role_mapping) = areas(&form.settings, &form.secrets, &form.role_mapping)?;
        let change = PlatformChange {
            settings: Some(json_map(settings)),
            secrets: (!secrets.is_empty()).then(|| json_map(secrets)),
            role_mapping: Some(role_mapping),
            landing_zone_required: Some(form.landing_zone_required == "true"),
            deletion: Some(form.deletion.trim().to_owned()).filter(|d| !d.is_empty()),
            drift_policy: None,
        };
        canopy_app::platform_registry::update(
            &app.store,
            &app.config.secret_key,
            &viewer.principal,
            app.clock.now(),
            &platform,
            change,
        )
        .await
    }
    .await;
    match outcome {
        Ok(v) => Ok(done(
            &format!("/admin/platforms/{platform}"),
            &format!("The platform {} was changed.", v.platform.identifier),
        )),
        Err(e) => match Problems::of(&e, &["settings", "secrets", "role_mapping", "deletion", "landing_zone_required"])
        {
            Some(p) => {
                let form = ChangeForm { secrets: String::new(), ..form };
                let empty = (NewZone::default(), Problems::default());
                Ok(unprocessable(platform_page(&app, &viewer, &platform, empty, Some((form, p))).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/platforms/{platform}/landing-zones/{zone}/delete`.
pub async fn delete_zone(
    State(app): State<AppState>,
    Path((platform, zone)): Path<(String, String)>,
    posted: Posted<Nothing>,
) -> UiResult {
    let viewer = posted.viewer;
    let deleted = canopy_app::platform_registry::delete_landing_zone(
        &app.store,
        &viewer.principal,
        app.clock.now(),
        (&platform, &zone),
    )
    .await;
    match deleted {
        Ok(()) => Ok(done(&format!("/admin/platforms/{platform}"), &format!("The landing zone {zone} was removed."))),
        Err(e @ canopy_app::Error::Conflict { .. }) => {
            let empty = (NewZone::default(), Problems::general(e.to_string()));
            Ok(unprocessable(platform_page(&app, &viewer, &platform, empty, None).await?))
        }
        Err(e) => Err(UiError::App(e)),
    }
}

#[derive(Template)]
#[template(path = "admin/zone.html")]
struct ZonePage {
    frame: Frame,
    tabs: Vec<Tab>,
    platform: String,
    identifier: String,
    form: NewZone,
    problems: Problems,
}

async fn zone_page(
    app: &AppState,
    viewer: &Viewer,
    (platform, zone): (&str, &str),
    typed: Option<(NewZone, Problems)>,
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerPlatforms).map_err(UiError::App)?;
    let z = canopy_app::platform_registry::show_landing_zone(&app.store, (platform, zone)).await?;
    let crumbs = vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Platforms", "/admin/platforms"),
        Crumb::link(z.platform.clone(), format!("/admin/platforms/{}", z.platform)),
        Crumb::here(z.zone.display_name.clone()),
    ];
    let frame = viewer.frame(app, &z.zone.display_name, None, crumbs).await?;
    let (form, problems) = typed.unwrap_or_else(|| {
        let form = NewZone {
            identifier: z.zone.identifier.clone(),
            display_name: z.zone.display_name.clone(),
            settings: settings_lines(&z.zone.settings),
        };
        (form, Problems::default())
    });
    let page = ZonePage {
        frame,
        tabs: admin_tabs("platforms", viewer.is_admin()),
        platform: z.platform,
        identifier: z.zone.identifier,
        form,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/platforms/{platform}/landing-zones/{zone}`: a landing zone to change.
pub async fn show_zone(
    State(app): State<AppState>,
    viewer: Viewer,
    Path((platform, zone)): Path<(String, String)>,
) -> UiResult {
    zone_page(&app, &viewer, (&platform, &zone), None).await
}

/// `POST /admin/platforms/{platform}/landing-zones/{zone}`: change a landing
/// zone's name and settings (TN2); tenants made from now on get them,
/// tenants made before keep what they were made with.
pub async fn update_zone(
    State(app): State<AppState>,
    Path((platform, zone)): Path<(String, String)>,
    posted: Posted<NewZone>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let change = LandingZoneChange {
            display_name: Some(form.display_name.trim().to_owned()),
            settings: Some(zone_settings(&form.settings)?),
        };
        let now = app.clock.now();
        canopy_app::platform_registry::update_landing_zone(
            &app.store,
            &viewer.principal,
            now,
            (&platform, &zone),
            change,
        )
        .await
    }
    .await;
    match outcome {
        Ok(z) => Ok(done(
            &format!("/admin/platforms/{platform}"),
            &format!("The landing zone {} was saved.", z.zone.display_name),
        )),
        Err(e) => match Problems::of(&e, &["display_name", "settings"]) {
            Some(p) => Ok(unprocessable(zone_page(&app, &viewer, (&platform, &zone), Some((form, p))).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed set-up is a failed test
    use super::*;

    #[test]
    fn tn1_pasted_certificates_and_key_files_span_lines() {
        let raw = "api_url=https://k\nca_cert=-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
                   service_account_key={\n  \"client_email\": \"c@p\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMII\\n\"\n}\n\
                   origin=uaa";
        let m = key_values("settings", raw).unwrap();
        assert_eq!(m["ca_cert"], "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
        let key: Value = serde_json::from_str(&m["service_account_key"]).unwrap();
        assert_eq!(key["client_email"], "c@p");
        assert_eq!((m["api_url"].as_str(), m["origin"].as_str()), ("https://k", "uaa"));
        let open = key_values("secrets", "service_account_key={\n\"a\": 1\n");
        assert!(open.unwrap_err().message.contains("does not end"));
        assert!(key_values("settings", "ca_cert=-----BEGIN CERTIFICATE-----\nMIIB").is_err());
    }
}
