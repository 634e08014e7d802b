//! Administration → Users and Groups (ID1, ID2, AC10): local accounts
//! (create, deactivate, reactivate), groups and their members; and
//! Settings (FE1, PM2) with the history's verification (HI3).

use askama::Template;
use axum::extract::{Path, Query, State};
use canopy_app::paging::Paging;
use canopy_app::settings::{FourEyeChange, SettingsChange};
use canopy_app::users::{NewUserInput, UserUpdate};
use serde::Deserialize;

use super::admin::admin_tabs;
use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame, Tab};
use super::session::{Posted, Viewer};
use super::text;
use crate::AppState;
use crate::extract::ClientAddress;

struct UserRow {
    username: String,
    name: String,
    email: String,
    roles: String,
    active: bool,
    created: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    frame: Frame,
    tabs: Vec<Tab>,
    q: String,
    rows: Vec<UserRow>,
    next: Option<String>,
    new: NewUser,
    problems: Problems,
}

async fn users_page(app: &AppState, viewer: &Viewer, query: UsersQuery, new: NewUser, problems: Problems) -> UiResult {
    let paging = Paging::parse(None, query.cursor.as_deref())?;
    let q = Some(query.q.trim()).filter(|q| !q.is_empty());
    let list = canopy_app::users::list(&app.store, &viewer.principal, q, &paging).await?;
    let rows = list
        .items
        .into_iter()
        .map(|u| UserRow {
            name: canopy_store::person_display_name(&u.first_name, &u.last_name),
            roles: u.installation_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            active: u.active,
            created: text::day(u.created_at),
            email: u.email,
            username: u.username,
        })
        .collect();
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Users")];
    let frame = viewer.frame(app, "Users", None, crumbs).await?;
    let page = UsersPage {
        frame,
        tabs: admin_tabs("users", viewer.is_admin()),
        q: query.q,
        rows,
        next: list.next_cursor,
        new,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/users?q=`: the accounts, searched and paged.
pub async fn users(State(app): State<AppState>, viewer: Viewer, Query(q): Query<UsersQuery>) -> UiResult {
    users_page(&app, &viewer, q, NewUser::default(), Problems::default()).await
}

/// `POST /admin/users`: create a local account.
pub async fn create_user(State(app): State<AppState>, posted: Posted<NewUser>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let input = NewUserInput {
        username: form.username.trim().to_owned(),
        email: form.email.trim().to_owned(),
        first_name: form.first_name.trim().to_owned(),
        last_name: form.last_name.trim().to_owned(),
        password: Some(form.password.clone()),
        installation_roles: vec![],
    };
    match canopy_app::users::create(&app.store, &app.passwords, &viewer.principal, app.clock.now(), input).await {
        Ok(u) => Ok(done("/admin/users", &format!("The account {} was created.", u.username))),
        Err(e) => match Problems::of(&e, &["username", "email", "first_name", "last_name", "password"]) {
            Some(p) => {
                let form = NewUser { password: String::new(), ..form };
                Ok(unprocessable(users_page(&app, &viewer, UsersQuery::default(), form, p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ActiveForm {
    #[serde(default)]
    active: String,
    /// `account`: back to the account's page rather than the list.
    #[serde(default)]
    back: String,
}

/// `POST /admin/users/{user}/active`: deactivate (AC10: every access ends,
/// every session too) or reactivate an account.
pub async fn set_active(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    Path(user): Path<String>,
    posted: Posted<ActiveForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let active = form.active == "true";
    let update = UserUpdate { active: Some(active), ..UserUpdate::default() };
    let u = canopy_app::users::update(
        &app.store,
        &app.passwords,
        &viewer.principal,
        (app.clock.now(), client),
        &user,
        update,
    )
    .await?;
    let what = if active { "reactivated" } else { "deactivated: its access ends everywhere" };
    let to = if form.back == "account" { format!("/admin/users/{}", u.username) } else { "/admin/users".to_owned() };
    Ok(done(&to, &format!("The account {} was {what}.", u.username)))
}

struct GroupRow {
    identifier: String,
    name: String,
    members: i64,
    provisioned: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewGroup {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    display_name: String,
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    rows: Vec<GroupRow>,
    next: Option<String>,
    new: NewGroup,
    problems: Problems,
}

async fn groups_page(
    app: &AppState,
    viewer: &Viewer,
    cursor: Option<&str>,
    new: NewGroup,
    problems: Problems,
) -> UiResult {
    viewer.principal.require(canopy_domain::authz::Action::AdministerGroups).map_err(UiError::App)?;
    let paging = Paging::parse(None, cursor)?;
    let list = canopy_app::groups::list(&app.store, &viewer.principal, &paging).await?;
    let rows = list
        .items
        .into_iter()
        .map(|g| GroupRow {
            identifier: g.identifier,
            name: g.display_name,
            members: g.member_count,
            provisioned: g.provisioned,
        })
        .collect();
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Groups")];
    let frame = viewer.frame(app, "Groups", None, crumbs).await?;
    Ok(viewer.page(&GroupsPage {
        frame,
        tabs: admin_tabs("groups", viewer.is_admin()),
        rows,
        next: list.next_cursor,
        new,
        problems,
    }))
}

/// `GET /admin/groups`.
pub async fn groups(State(app): State<AppState>, viewer: Viewer, Query(q): Query<super::form::PageQuery>) -> UiResult {
    groups_page(&app, &viewer, q.cursor.as_deref(), NewGroup::default(), Problems::default()).await
}

/// `POST /admin/groups`: create a group.
pub async fn create_group(State(app): State<AppState>, posted: Posted<NewGroup>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let made = canopy_app::groups::create(
        &app.store,
        &viewer.principal,
        app.clock.now(),
        (form.identifier.trim(), form.display_name.trim()),
    )
    .await;
    match made {
        Ok(g) => {
            Ok(done(&format!("/admin/groups/{}", g.identifier), &format!("The group {} was created.", g.display_name)))
        }
        Err(e) => match Problems::of(&e, &["identifier", "display_name"]) {
            Some(p) => Ok(unprocessable(groups_page(&app, &viewer, None, form, p).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

#[derive(Template)]
#[template(path = "admin/group.html")]
struct GroupPage {
    frame: Frame,
    tabs: Vec<Tab>,
    identifier: String,
    name: String,
    /// Owned by the identity provider (SCIM): shown without forms.
    provisioned: bool,
    members: Vec<(String, String)>,
    next: Option<String>,
    username: String,
    problems: Problems,
}

async fn group_page(
    app: &AppState,
    viewer: &Viewer,
    group: &str,
    cursor: Option<&str>,
    username: String,
    problems: Problems,
) -> UiResult {
    let paging = Paging::parse(None, cursor)?;
    let g = canopy_app::groups::show(&app.store, &viewer.principal, group).await?;
    let (members, _) = canopy_app::groups::members(&app.store, &viewer.principal, group, &paging).await?;
    let crumbs = vec![
        Crumb::link("Administration", "/admin/workspaces"),
        Crumb::link("Groups", "/admin/groups"),
        Crumb::here(g.display_name.clone()),
    ];
    let frame = viewer.frame(app, &g.display_name, None, crumbs).await?;
    let page = GroupPage {
        frame,
        tabs: admin_tabs("groups", viewer.is_admin()),
        identifier: g.identifier,
        name: g.display_name,
        provisioned: g.provisioned,
        members: members
            .items
            .into_iter()
            .map(|u| (u.username, canopy_store::person_display_name(&u.first_name, &u.last_name)))
            .collect(),
        next: members.next_cursor,
        username,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /admin/groups/{group}`: a group and its members.
pub async fn group(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(group): Path<String>,
    Query(q): Query<super::form::PageQuery>,
) -> UiResult {
    group_page(&app, &viewer, &group, q.cursor.as_deref(), String::new(), Problems::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    user: String,
}

/// `POST /admin/groups/{group}/members`: add a member (AC3: the group's
/// bindings reach them).
pub async fn add_member(
    State(app): State<AppState>,
    Path(group): Path<String>,
    posted: Posted<MemberForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let user = form.user.trim().trim_start_matches("user:").to_owned();
    let added = canopy_app::groups::add_member(&app.store, &viewer.principal, app.clock.now(), (&group, &user)).await;
    match added {
        Ok(u) => Ok(done(&format!("/admin/groups/{group}"), &format!("{} joined the group.", u.username))),
        Err(e) => {
            // an unknown person is the field's problem, not a missing page
            let e = match e {
                canopy_app::Error::NotFound(d) => canopy_app::Error::invalid("user", d),
                other => other,
            };
            match Problems::of(&e, &["user"]) {
                Some(p) => Ok(unprocessable(group_page(&app, &viewer, &group, None, form.user, p).await?)),
                None => Err(UiError::App(e)),
            }
        }
    }
}

/// `POST /admin/groups/{group}/members/{user}/remove`: remove a member
/// (AC3: they lose what the group's bindings gave them).
pub async fn remove_member(
    State(app): State<AppState>,
    Path((group, user)): Path<(String, String)>,
    posted: Posted<super::session::Nothing>,
) -> UiResult {
    canopy_app::groups::remove_member(&app.store, &posted.viewer.principal, app.clock.now(), (&group, &user)).await?;
    Ok(done(&format!("/admin/groups/{group}"), &format!("{user} left the group.")))
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    four_eye: String,
    #[serde(default)]
    approvals: String,
    #[serde(default)]
    max_binding_days: String,
    #[serde(default)]
    payment_substitutes: String,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    frame: Frame,
    tabs: Vec<Tab>,
    form: SettingsForm,
    problems: Problems,
    verification: Option<Verified>,
}

/// What the history's verification found.
struct Verified {
    chains: u64,
    events: u64,
    problems: Vec<String>,
}

async fn settings_page(
    app: &AppState,
    viewer: &Viewer,
    form: Option<SettingsForm>,
    problems: Problems,
    verification: Option<Verified>,
) -> UiResult {
    let now = canopy_app::settings::show(&app.store, &viewer.principal).await?;
    let form = form.unwrap_or_else(|| SettingsForm {
        four_eye: if now.four_eye.enabled { "true".into() } else { String::new() },
        approvals: now.four_eye.approvals.to_string(),
        max_binding_days: now.max_binding_days.map(|d| d.to_string()).unwrap_or_default(),
        payment_substitutes: if now.payment_substitutes { "true".into() } else { String::new() },
    });
    let crumbs = vec![Crumb::link("Administration", "/admin/workspaces"), Crumb::here("Settings")];
    let frame = viewer.frame(app, "Settings", None, crumbs).await?;
    Ok(viewer.page(&SettingsPage {
        frame,
        tabs: admin_tabs("settings", viewer.is_admin()),
        form,
        problems,
        verification,
    }))
}

/// `GET /admin/settings`: the installation's settings.
pub async fn settings(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    settings_page(&app, &viewer, None, Problems::default(), None).await
}

/// `POST /admin/settings`: change them (FE1, PM2).
pub async fn save_settings(State(app): State<AppState>, posted: Posted<SettingsForm>) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let outcome = async {
        let approvals = form
            .approvals
            .trim()
            .parse::<u32>()
            .map_err(|_| canopy_app::Error::invalid("four_eye.approvals", "give a whole number of approvals"))?;
        let max = match form.max_binding_days.trim() {
            "" => None,
            raw => Some(raw.parse::<u32>().map_err(|_| {
                canopy_app::Error::invalid("max_binding_days", "give a whole number of days, or leave it empty")
            })?),
        };
        let change = SettingsChange {
            four_eye: Some(FourEyeChange { enabled: Some(form.four_eye == "true"), approvals: Some(approvals) }),
            max_binding_days: Some(max),
            payment_substitutes: Some(form.payment_substitutes == "true"),
        };
        canopy_app::settings::update(&app.store, &viewer.principal, app.clock.now(), change).await
    }
    .await;
    match outcome {
        Ok(_) => Ok(done("/admin/settings", "The settings were saved.")),
        Err(e) => match Problems::of(&e, &["four_eye.approvals", "max_binding_days", "payment_substitutes"]) {
            Some(p) => Ok(unprocessable(settings_page(&app, &viewer, Some(form), p, None).await?)),
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/settings/verify`: verify every chain of the history (HI3).
pub async fn verify(State(app): State<AppState>, posted: Posted<super::session::Nothing>) -> UiResult {
    let viewer = posted.viewer;
    let v = canopy_app::history::verify(&app.store, &viewer.principal, &app.config.history_key, None).await?;
    let verified = Verified {
        chains: v.chains_checked,
        events: v.events_checked,
        problems: v.problems.iter().map(|p| format!("{} ({}): {}", p.chain, p.code, p.reason)).collect(),
    };
    settings_page(&app, &viewer, None, Problems::default(), Some(verified)).await
}

#[derive(Debug, Default, Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    display_name: String,
}

/// `POST /admin/groups/{group}/rename`: a group's new name.
pub async fn rename_group(
    State(app): State<AppState>,
    Path(group): Path<String>,
    posted: Posted<RenameForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let renamed = canopy_app::groups::rename(
        &app.store,
        &viewer.principal,
        app.clock.now(),
        &group,
        Some(form.display_name.trim()),
    )
    .await;
    match renamed {
        Ok(g) => Ok(done(&format!("/admin/groups/{group}"), &format!("The group is now called {}.", g.display_name))),
        Err(e) => match Problems::of(&e, &["display_name"]) {
            Some(p) => Ok(unprocessable(
                group_page(&app, &viewer, &group, None, String::new(), p.flattened("Not renamed")).await?,
            )),
            None => Err(UiError::App(e)),
        },
    }
}

/// `POST /admin/groups/{group}/delete`: remove a group; its members lose
/// what its bindings and memberships gave them (AC3).
pub async fn delete_group(
    State(app): State<AppState>,
    Path(group): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> UiResult {
    canopy_app::groups::delete(&app.store, &posted.viewer.principal, app.clock.now(), &group).await?;
    Ok(done("/admin/groups", &format!("The group {group} was removed.")))
}
