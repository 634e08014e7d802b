//! Signing in to the web UI: a cookie holding a session token of the same
//! kind as `POST /api/v1/auth/token` gives, which also ends after
//! [`crate::ServerConfig::session_idle`] unused; a CSRF token derived from
//! it on every form; sign-out.
//!
//! The session cookie is `HttpOnly` (no script reads it), `SameSite=Lax`
//! (other sites' forms do not carry it) and `Secure` when Canopy's public
//! address is HTTPS. A form's CSRF token is a hash of the session token, so
//! it needs no storage and only a page of this session can know it; the
//! sign-in form, before any session, carries a random value that must match
//! a cookie of its own (double submit).

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canopy_app::Principal;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::form::{UiError, UiResult, done};
use crate::AppState;
use crate::extract::ClientAddress;

/// The cookie that holds the session token.
pub const SESSION_COOKIE: &str = "canopy_session";
/// The cookie that the sign-in form's CSRF field must match.
pub const LOGIN_COOKIE: &str = "canopy_login";
/// A message for the next page (after a change, Post/Redirect/Get).
const FLASH_COOKIE: &str = "canopy_flash";
/// The largest form body a page accepts.
const MAX_FORM: usize = 256 * 1024;

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| v.len() <= 512)
}

/// The CSRF token of the session `token`.
pub fn csrf_of(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::new().chain_update(b"canopy-csrf\n").chain_update(token.as_bytes()).finalize())
}

/// Equal, in time that does not depend on where they differ.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn set_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(super) fn secure(app: &AppState) -> &'static str {
    if app.config.https() { "; Secure" } else { "" }
}

/// The `Set-Cookie` value of a new session of the web UI.
pub(super) fn session_cookie(app: &AppState, session: &canopy_app::session::NewSession, now: OffsetDateTime) -> String {
    let max_age = (session.expires_at - now).whole_seconds().max(0);
    format!("{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}", session.token, secure(app))
}

/// A `Set-Cookie` value carrying `message` to the next page.
pub fn flash_cookie(message: &str) -> String {
    let message: String = message.chars().take(300).collect();
    format!("{FLASH_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60", URL_SAFE_NO_PAD.encode(message))
}

fn read_flash(headers: &HeaderMap) -> Option<String> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    String::from_utf8(bytes).ok().filter(|m| !m.is_empty())
}

/// A local path to go to after signing in; anything else goes home.
pub(super) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2000
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The signed-in person looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// A message left by the previous request (shown once).
    pub flash: Option<String>,
}

impl Viewer {
    /// Whether the viewer administers the installation (the admin area, AD1).
    pub fn is_admin(&self) -> bool {
        self.principal.require(canopy_domain::authz::Action::AdministerInstallation).is_ok()
    }

    /// A page for this viewer: rendered, its flash message spent.
    pub fn page(&self, template: &impl Template) -> Response {
        let mut res = super::render(template);
        if self.flash.is_some() {
            set_cookie(&mut res, format!("{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"));
        }
        res
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let next = if parts.method == Method::GET {
            parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned())
        } else {
            "/".to_owned()
        };
        let sign_in = || UiError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(sign_in)?;
        let now = app.clock.now();
        let principal = match canopy_app::principal::authenticate(&app.store, &token, now).await {
            Ok(p) if p.session.is_some() => p,
            Ok(_) | Err(canopy_app::Error::Unauthenticated(_)) => return Err(sign_in()),
            Err(e) => return Err(e.into()),
        };
        canopy_app::session::keep_alive(&app.store, &principal, now, app.config.session_idle).await?;
        Ok(Viewer { principal, csrf: csrf_of(&token), flash: read_flash(&parts.headers) })
    }
}

/// A form posted by a page of the viewer's session: the viewer, the form
/// read into `T`, and its fields as sent (for repeated or dynamic fields).
/// A form without this session's CSRF token is refused ([`UiError::Forged`])
/// before anything else is read from it.
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
    pub fields: Vec<(String, String)>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let fields = read_form(Request::from_parts(parts, body), app).await?;
        let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !same(csrf, &viewer.csrf) {
            return Err(UiError::Forged);
        }
        let form = parse_fields(&fields)?;
        Ok(Posted { viewer, form, fields })
    }
}

/// The fields of a form body (`application/x-www-form-urlencoded`).
async fn read_form(req: Request, app: &AppState) -> UiResult<Vec<(String, String)>> {
    let unreadable = |d: &str| UiError::App(canopy_app::Error::Unreadable(d.to_owned()));
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded");
    if !is_form {
        return Err(unreadable("send the form as application/x-www-form-urlencoded"));
    }
    let bytes = crate::extract::read_body(req, app).await.map_err(|_| unreadable("the form could not be read"))?;
    if bytes.len() > MAX_FORM {
        return Err(unreadable("the form is too large"));
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    if fields.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(unreadable("the form holds NUL characters"));
    }
    Ok(fields)
}

fn parse_fields<T: DeserializeOwned>(fields: &[(String, String)]) -> UiResult<T> {
    let encoded = serde_urlencoded::to_string(fields).map_err(|e| canopy_app::Error::Unreadable(e.to_string()))?;
    serde_urlencoded::from_str(&encoded)
        .map_err(|e| UiError::App(canopy_app::Error::Unreadable(format!("the form could not be read: {e}"))))
}

// ---------------------------------------------------------------- sign-in page

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    /// "Sign in with NAME" and where it leads, when a provider is configured.
    sso: Option<(&'a str, String)>,
    /// Passwords are for admins only: the form is folded away.
    break_glass: bool,
    username: &'a str,
    error: Option<&'a str>,
    flash: Option<String>,
    css: &'static str,
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in page, with a fresh CSRF value in a cookie of its own.
pub(super) fn login_form(
    app: &AppState,
    headers: &HeaderMap,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        return UiError::App(canopy_app::Error::internal("no random bytes")).into_response();
    }
    let csrf = URL_SAFE_NO_PAD.encode(bytes);
    let flash = read_flash(headers);
    let had_flash = flash.is_some();
    let sso = app.oidc.as_ref().map(|o| {
        let to =
            format!("/auth/oidc/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
        (o.settings.display_name.as_str(), to)
    });
    let break_glass = app.config.local_sign_in == canopy_domain::signin::LocalSignIn::AdminsOnly;
    let page = LoginPage { csrf: &csrf, next, sso, break_glass, username, error, flash, css: super::assets::CSS };
    let mut res = super::render(&page);
    set_cookie(&mut res, format!("{LOGIN_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict{}", secure(app)));
    if had_flash {
        set_cookie(&mut res, format!("{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"));
    }
    res
}

/// `GET /login`: the sign-in form, or on to `next` for someone signed in.
pub async fn login_page(State(app): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = local_path(q.next.as_deref());
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && canopy_app::principal::authenticate(&app.store, &token, app.clock.now())
            .await
            .is_ok_and(|p| p.session.is_some())
    {
        return Redirect::to(&next).into_response();
    }
    login_form(&app, &headers, &next, "", None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: sign in with a local account. A failure says why without
/// telling whether the account exists.
pub async fn login(State(app): State<AppState>, ClientAddress(client): ClientAddress, req: Request) -> Response {
    let headers = req.headers().clone();
    let fields = match read_form(req, &app).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let form: LoginForm = match parse_fields(&fields) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let next = local_path(form.next.as_deref());
    let username: String = form.username.chars().take(200).collect();
    let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(sent, &expected) {
        let mut res =
            login_form(&app, &headers, &next, &username, Some("This sign-in form had expired. Please try again."));
        *res.status_mut() = StatusCode::FORBIDDEN;
        return res;
    }
    let now = app.clock.now();
    let signed_in = canopy_app::session::sign_in(
        &app.store,
        &app.passwords,
        now,
        client,
        (form.username.as_str(), form.password),
        (app.config.ui_lifetime(), app.config.local_sign_in),
    )
    .await;
    let (status, message) = match signed_in {
        Ok(session) => {
            let mut res = Redirect::to(&next).into_response();
            set_cookie(&mut res, session_cookie(&app, &session, now));
            set_cookie(&mut res, format!("{LOGIN_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"));
            return res;
        }
        Err(canopy_app::Error::Unauthenticated(_)) => {
            app.metrics.sign_in_failed();
            let why = match app.config.local_sign_in {
                canopy_domain::signin::LocalSignIn::All => {
                    "The username or the password is wrong, or the account is deactivated."
                }
                canopy_domain::signin::LocalSignIn::AdminsOnly => {
                    "The username or the password is wrong, or the account is deactivated. Passwords here are \
                     for admins only: everyone else signs in with the identity provider above."
                }
            };
            (StatusCode::UNAUTHORIZED, why.to_owned())
        }
        Err(canopy_app::Error::TooManyRequests { retry_after, .. }) => {
            app.metrics.sign_in_throttled(false);
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many sign-in attempts. Try again in {}.", seconds(retry_after)),
            )
        }
        Err(canopy_app::Error::Unavailable { retry_after, .. }) => {
            app.metrics.sign_in_throttled(true);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Canopy is busy signing other people in. Try again in {}.", seconds(retry_after)),
            )
        }
        Err(canopy_app::Error::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
        ),
        Err(e) => return UiError::App(e).into_response(),
    };
    let mut res = login_form(&app, &headers, &next, &username, Some(&message));
    *res.status_mut() = status;
    res
}

fn seconds(n: i64) -> String {
    match n {
        ..=1 => "a second".to_owned(),
        2..=90 => format!("{n} seconds"),
        _ => format!("{} minutes", (n + 59) / 60),
    }
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST /logout`: end the session (SE6) and forget its cookie.
pub async fn logout(State(app): State<AppState>, posted: Posted<Nothing>) -> UiResult {
    canopy_app::session::sign_out(&app.store, &posted.viewer.principal).await?;
    let mut res = done("/login", "You are signed out.");
    set_cookie(&mut res, format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}", secure(&app)));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn if2_id1_after_signing_in_only_a_path_of_canopy_is_followed() {
        for (next, to) in [
            (Some("/workspaces/team-a"), "/workspaces/team-a"),
            (Some("/profile?tab=1"), "/profile?tab=1"),
            (Some("//evil.example/x"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\tevil"), "/"),
            (Some("evil"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(next), to, "{next:?}");
        }
    }
}
