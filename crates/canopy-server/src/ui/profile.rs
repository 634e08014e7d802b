//! Profile: one's own account, and a password change that needs the
//! current password and ends every session of the account (SE6).

use askama::Template;
use axum::extract::State;
use canopy_app::users::UserUpdate;
use serde::Deserialize;

use super::form::{Problems, UiError, UiResult, done, unprocessable};
use super::frame::{Crumb, Frame};
use super::session::{Posted, Viewer};
use crate::AppState;
use crate::extract::ClientAddress;

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    frame: Frame,
    username: String,
    name: String,
    email: String,
    roles: String,
    problems: Problems,
}

async fn page(app: &AppState, viewer: &Viewer, problems: Problems) -> UiResult {
    let me = canopy_app::users::show(&app.store, &viewer.principal, &viewer.principal.actor.name).await?;
    let frame = viewer.frame(app, "Profile", None, vec![Crumb::here("Profile")]).await?;
    let page = ProfilePage {
        frame,
        name: canopy_store::person_display_name(&me.first_name, &me.last_name),
        roles: me.installation_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
        email: me.email,
        username: me.username,
        problems,
    };
    Ok(viewer.page(&page))
}

/// `GET /profile`.
pub async fn show(State(app): State<AppState>, viewer: Viewer) -> UiResult {
    page(&app, &viewer, Problems::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
}

/// `POST /profile/password`: change one's password (SE6): every session of
/// the account ends, this one too.
pub async fn change_password(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    posted: Posted<PasswordForm>,
) -> UiResult {
    let Posted { viewer, form, .. } = posted;
    let update = UserUpdate {
        password: Some(form.password),
        current_password: Some(form.current_password),
        ..UserUpdate::default()
    };
    let username = viewer.principal.actor.name.clone();
    let changed = canopy_app::users::update(
        &app.store,
        &app.passwords,
        &viewer.principal,
        (app.clock.now(), client),
        &username,
        update,
    )
    .await;
    match changed {
        Ok(_) => Ok(done("/login", "Your password was changed and every session ended; sign in with the new one.")),
        Err(e) => match Problems::of(&e, &["current_password", "password"]) {
            Some(p) => Ok(unprocessable(page(&app, &viewer, p).await?)),
            // a wrong current password is the field's problem, not the page's
            None if matches!(e, canopy_app::Error::Unauthenticated(_) | canopy_app::Error::Forbidden(_)) => {
                let p =
                    Problems::of(&canopy_app::Error::invalid("current_password", e.to_string()), &["current_password"])
                        .unwrap_or_default();
                Ok(unprocessable(page(&app, &viewer, p).await?))
            }
            None => Err(UiError::App(e)),
        },
    }
}
