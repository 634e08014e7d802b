//! Sign-in through the OpenID Connect provider (ID1): `GET /auth/oidc/login`
//! sends the browser to the provider with a fresh `state`, nonce and PKCE
//! challenge (kept by `canopy_app::sso` until they come back, and the
//! `state` also in a cookie of this browser); `GET /auth/oidc/callback`
//! takes them back once, lets `crate::oidc` check what the provider
//! answered, and signs the person in. Whatever fails shows the sign-in page
//! again, saying why.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use canopy_store::PendingOidcLogin;
use serde::Deserialize;

use super::session::{cookie, local_path, login_form, same, secure, session_cookie, set_cookie};
use crate::AppState;
use crate::oidc::OidcError;

#[derive(Template)]
#[template(path = "cli_confirm.html")]
struct CliConfirmPage<'a> {
    username: &'a str,
    port: u16,
    to: &'a str,
    css: &'static str,
}

/// The cookie that binds a sign-in sent to the provider to this browser, so
/// that nobody can finish it in someone else's (login CSRF).
const STATE_COOKIE: &str = "canopy_oidc";

#[derive(Debug, Default, Deserialize)]
pub struct StartQuery {
    next: Option<String>,
    /// `canopy login --sso`: the loopback port the CLI listens on ...
    cli_port: Option<String>,
    /// ... and the PKCE challenge (S256) of the verifier it holds.
    cli_challenge: Option<String>,
}

/// The CLI's port and challenge, when both are given and well formed.
fn cli_of(q: &StartQuery) -> Result<Option<(u16, String)>, &'static str> {
    match (q.cli_port.as_deref(), q.cli_challenge.as_deref()) {
        (None, None) => Ok(None),
        (Some(port), Some(challenge)) => {
            let port = port.parse::<u16>().ok().filter(|p| *p >= 1024).ok_or("cli_port must be a port from 1024 up")?;
            let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if challenge.len() != 43 || !challenge.chars().all(b64url) {
                return Err("cli_challenge must be a PKCE S256 challenge (43 base64url characters)");
            }
            Ok(Some((port, challenge.to_owned())))
        }
        _ => Err("give both cli_port and cli_challenge"),
    }
}

/// The sign-in page again, saying `why`, with `status`.
fn again(app: &AppState, headers: &HeaderMap, status: StatusCode, why: &str) -> Response {
    let mut res = login_form(app, headers, "/", "", Some(why));
    *res.status_mut() = status;
    res
}

fn not_configured(app: &AppState, headers: &HeaderMap) -> Response {
    again(app, headers, StatusCode::NOT_FOUND, "Sign-in through an identity provider is not set up on this Canopy.")
}

/// `GET /auth/oidc/login?next=`: on to the provider.
pub async fn start(State(app): State<AppState>, headers: HeaderMap, Query(q): Query<StartQuery>) -> Response {
    let Some(oidc) = app.oidc.clone() else { return not_configured(&app, &headers) };
    let cli = match cli_of(&q) {
        Ok(cli) => cli,
        Err(why) => return again(&app, &headers, StatusCode::BAD_REQUEST, why),
    };
    let name = &oidc.settings.display_name;
    let start = match oidc.start().await {
        Ok(s) => s,
        Err(e) => {
            let why = format!("Sign-in with {name} is not available right now: {e}");
            return again(&app, &headers, StatusCode::SERVICE_UNAVAILABLE, &why);
        }
    };
    let now = app.clock.now();
    let login = PendingOidcLogin {
        pkce_verifier: start.pkce_verifier,
        nonce: start.nonce,
        next_path: local_path(q.next.as_deref()),
        expires_at: now + canopy_app::sso::LOGIN_LIFETIME,
        cli,
    };
    if let Err(e) = canopy_app::sso::begin(&app.store, now, &start.state, login).await {
        return super::form::UiError::App(e).into_response();
    }
    let mut res = Redirect::to(&start.url).into_response();
    let max_age = canopy_app::sso::LOGIN_LIFETIME.whole_seconds();
    set_cookie(
        &mut res,
        format!(
            "{STATE_COOKIE}={}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
            start.state,
            secure(&app)
        ),
    );
    res
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// What came from outside, cut to a length a page can show.
fn clipped(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// `GET /auth/oidc/callback`: the provider sends the browser back.
pub async fn callback(State(app): State<AppState>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let Some(oidc) = app.oidc.clone() else { return not_configured(&app, &headers) };
    let name = oidc.settings.display_name.clone();
    let refused = |status: StatusCode, why: String| {
        let mut res = again(&app, &headers, status, &format!("Sign-in with {name} failed: {why}"));
        set_cookie(&mut res, format!("{STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"));
        res
    };
    let started_here = q.state.as_deref().is_some_and(|s| cookie(&headers, STATE_COOKIE).is_some_and(|c| same(&c, s)));
    if let Some(error) = q.error.as_deref() {
        // the provider's words only for the browser that started this sign-in,
        // never for anyone who follows a link made up elsewhere
        if let (true, Some(state)) = (started_here, q.state.as_deref()) {
            let _ = canopy_app::sso::resume(&app.store, app.clock.now(), state).await;
            tracing::info!(error = %clipped(error), "the identity provider refused a sign-in");
            let detail = q.error_description.as_deref().map(|d| format!(" ({})", clipped(d))).unwrap_or_default();
            return refused(
                StatusCode::UNAUTHORIZED,
                format!("the identity provider answered {}{detail}.", clipped(error)),
            );
        }
        return refused(StatusCode::UNAUTHORIZED, "the identity provider refused it, or it was interrupted.".into());
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return refused(StatusCode::BAD_REQUEST, "the identity provider sent no code or no state.".into());
    };
    if code.len() > 2048 || state.len() > 512 {
        return refused(StatusCode::BAD_REQUEST, "the identity provider's answer is too long.".into());
    }
    // started in this browser: otherwise someone could sign another person in as themselves
    if !started_here {
        return refused(StatusCode::FORBIDDEN, "it was not started in this browser. Start again here.".into());
    }
    let now = app.clock.now();
    let pending = match canopy_app::sso::resume(&app.store, now, state).await {
        Ok(p) => p,
        Err(canopy_app::Error::Unauthenticated(why)) => return refused(StatusCode::UNAUTHORIZED, format!("{why}.")),
        Err(e) => return super::form::UiError::App(e).into_response(),
    };
    let who = match oidc.finish(app.clock.clone(), code, pending.pkce_verifier, pending.nonce).await {
        Ok(who) => who,
        Err(e @ OidcError::Unavailable(_)) => return refused(StatusCode::SERVICE_UNAVAILABLE, format!("{e}.")),
        Err(e @ OidcError::Refused(_)) => {
            tracing::warn!(error = %e, "a sign-in through the identity provider was refused");
            return refused(StatusCode::UNAUTHORIZED, format!("{e}."));
        }
    };
    if let Some((port, challenge)) = &pending.cli {
        // for `canopy login --sso`: a one-time code, to this machine's loopback
        // only, and only once the person says so here (RFC 8252, 8.6): a link
        // sent by someone else must not hand their session to a program
        return match canopy_app::sso::grant_cli(&app.store, now, &who, challenge).await {
            Ok((code, username)) => {
                // the challenge, which only that command and this browser know, tells the
                // command that the code is from its own sign-in, not from a page probing ports
                let to = format!("http://127.0.0.1:{port}/callback?code={code}&state={challenge}");
                let page = CliConfirmPage { username: &username, port: *port, to: &to, css: super::assets::CSS };
                let mut res = super::render(&page);
                res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                set_cookie(&mut res, format!("{STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"));
                res
            }
            Err(canopy_app::Error::Forbidden(why)) => refused(StatusCode::FORBIDDEN, format!("{why}.")),
            Err(canopy_app::Error::Conflict { detail, .. }) => refused(StatusCode::CONFLICT, format!("{detail}.")),
            Err(e) => super::form::UiError::App(e).into_response(),
        };
    }
    match canopy_app::sso::sign_in(&app.store, now, &who, app.config.ui_lifetime()).await {
        Ok((session, _user)) => {
            let mut res = Redirect::to(&pending.next_path).into_response();
            set_cookie(&mut res, session_cookie(&app, &session, now));
            set_cookie(&mut res, format!("{STATE_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"));
            res
        }
        Err(canopy_app::Error::Forbidden(why)) => refused(StatusCode::FORBIDDEN, format!("{why}.")),
        Err(canopy_app::Error::Conflict { detail, .. }) => refused(StatusCode::CONFLICT, format!("{detail}.")),
        Err(e) => super::form::UiError::App(e).into_response(),
    }
}
