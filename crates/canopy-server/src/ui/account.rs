//! Administration → Users → one account (ID1, AC10, SE6): its names, e-mail
//! and installation roles, a new password set by an admin, deactivation and
//! reactivation, and its sessions ended.

use askama::Template;
use axum::extract::{Path, State};
use canopy_app::users::UserUpdate;
use canopy_domain::roles::InstallationRole;
use serde::Deserialize;

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab};
use super::session::{Nothing, Posted, Viewer};
use super::text;
use crate::AppState;
use crate::extract::ClientAddress;

/// The account form as shown or as typed; a checked role box sends `true`.
#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    admin: String,
    #[serde(default)]
    platform_engineer: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct AccountPage {
    frame: Frame,
    tabs: Vec<Tab>,
    username: String,
    name: String,
    active: bool,
    created: String,
    /// How the account signs in: a local password, identity providers.
    password: bool,
    providers: Vec<String>,
    /// Provisioned through SCIM: names and e-mail are the provider's.
    provisioned: bool,
    form: AccountForm,
    problems: Problems,
}

async fn account_page(
    app: &AppState,
    viewer: &Viewer,
    username: &str,
    typed: Option<(AccountForm, Problems)>,
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerUsers).map_err(UiError::App)?;
    let u = canopy_app::users::show(&app.store, &viewer.principal, username).await?;
    let providers = canopy_app::users::identity_providers(&app.store, &viewer.principal, &u.username).await?;
    let name = canopy_store::person_display_name(&u.first_name, &u.last_name);
    let crumbs = vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Users", "/admin/users"),
        Crumb::here(u.username.clone()),
    ];
    let frame = viewer.frame(app, &u.username, None, crumbs).await?;
    let has = |r: InstallationRole| if u.installation_roles.contains(&r) { "true".to_owned() } else { String::new() };
    let (form, problems) = typed.unwrap_or_else(|| {
        let form = AccountForm {
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
            password: String::new(),
            admin: has(InstallationRole::Admin),
            platform_engineer: has(InstallationRole::PlatformEngineer),
        };
        (form, Problems::default())
    });
    let page = AccountPage {
        frame,
        tabs: admin_tabs("users", viewer.is_admin()),
        name,
        active: u.active,
        created: text::day(u.created_at),
        password: u.password_hash.is_some(),
        providers: providers.issuers,
        provisioned: providers.provisioned,
        username: u.username,
        form,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/users/{user}`: one account.
pub async fn show(State(app): State<AppState>, viewer: Viewer, Path(user): Path<String>) -> UiResult {
    account_page(&app, &viewer, &user, None).await
}

/// `POST /admin/users/{user}`: change the account's names, e-mail and
/// installation roles, and its password where a new one is typed.
pub async fn update(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(user): Path<String>,
    posted: Posted<AccountForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let roles = [(InstallationRole::Admin, &form.admin), (InstallationRole::PlatformEngineer, &form.platform_engineer)]
        .into_iter()
        .filter(|(_, checked)| checked.as_str() == "true")
        .map(|(r, _)| r.as_str().to_owned())
        .collect();
    let update = UserUpdate {
        email: Some(form.email.trim().to_owned()),
        first_name: Some(form.first_name.trim().to_owned()),
        last_name: Some(form.last_name.trim().to_owned()),
        password: Some(form.password.clone()).filter(|p| !p.is_empty()),
        installation_roles: Some(roles),
        ..UserUpdate::default()
    };
    let now = (app.clock.now(), client);
    match canopy_app::users::update(&app.store, &app.passwords, &viewer.principal, now, &user, update).await {
        Ok(u) => Ok(done(&format!("/admin/users/{}", u.username), &format!("The account {} was saved.", u.username))),
        Err(e) => match Problems::of(&e, &["first_name", "last_name", "email", "password", "installation_roles"]) {
            Some(p) => {
                let form = AccountForm { password: String::new(), ..form };
                Ok(unprocessable(account_page(&app, &viewer, &user, Some((form, p))).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/users/{user}/sessions/end`: sign the account out everywhere (SE6).
pub async fn end_sessions(State(app): State<AppState>, Path(user): Path<String>, posted: Posted<Nothing>) -> UiResult {
    let ended = canopy_app::users::end_sessions(&app.store, &posted.viewer.principal, app.clock.now(), &user).await?;
    let what = match ended {
        1 => "1 session".to_owned(),
        n => format!("{n} sessions"),
    };
    Ok(done(&format!("/admin/users/{user}"), &format!("{what} of {user} ended.")))
}
