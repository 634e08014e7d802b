//! The web UI (IF2): server-rendered pages over the same use cases as the
//! REST API.
//!
//! Every page is an askama template under `templates/`, checked when the
//! crate compiles and HTML-escaped by default. Every action is a plain link
//! or form, so each works without JavaScript; htmx (vendored, embedded)
//! only makes the same forms faster (type-ahead). A handler here does what a
//! REST handler does: parse, call one use case of `canopy_app`, and map its
//! outcome, here to a page, a redirect with a flash message, or the same
//! form again with each message next to its field ([`form`]).
//!
//! Sign-in is a cookie session ([`session`]): the same sessions as the REST
//! API's tokens, which also end unused, with a CSRF token on every form.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;

mod access;
mod account;
mod admin;
mod assets;
mod bindings;
mod catalogue;
mod directory;
mod emergency;
mod expired;
pub mod form;
mod frame;
mod history;
mod home;
mod platforms;
mod profile;
mod project;
mod projects;
mod requests;
pub mod session;
mod sso;
mod tags;
mod tenant;
mod text;

pub use frame::Frame;
pub use session::Viewer;

/// The pages of the web UI, beside the REST API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::show).post(home::create_workspace))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/auth/oidc/login", get(sso::start))
        .route("/auth/oidc/callback", get(sso::callback))
        .route("/switch", get(home::switch))
        .route("/profile", get(profile::show))
        .route("/profile/password", post(profile::change_password))
        .route("/assets/{file}", get(assets::serve))
        .route("/workspaces/{ws}", get(projects::workspace_root))
        .route("/workspaces/{ws}/projects", get(projects::list).post(projects::create))
        .route("/workspaces/{ws}/projects/{project}", get(project::show))
        .route("/workspaces/{ws}/projects/{project}/tenants", post(project::add_tenant))
        .route("/workspaces/{ws}/projects/{project}/tenants/{platform}", get(tenant::show))
        .route("/workspaces/{ws}/projects/{project}/tenants/{platform}/replicate", post(project::replicate))
        .route("/workspaces/{ws}/projects/{project}/tenants/{platform}/delete", post(tenant::delete))
        .route("/workspaces/{ws}/projects/{project}/deletion", get(tenant::deletion))
        .route("/workspaces/{ws}/projects/{project}/deletion/request", post(tenant::request))
        .route("/workspaces/{ws}/projects/{project}/deletion/confirm", post(tenant::confirm))
        .route("/workspaces/{ws}/projects/{project}/payment", post(project::payment))
        .route("/workspaces/{ws}/projects/{project}/tags", post(project::save_tags))
        .route("/workspaces/{ws}/projects/{project}/access", get(bindings::show).post(bindings::add))
        .route("/workspaces/{ws}/projects/{project}/access/{id}", post(bindings::change))
        .route(
            "/workspaces/{ws}/projects/{project}/access/{id}/remove",
            get(bindings::confirm_removal).post(bindings::remove),
        )
        .route("/workspaces/{ws}/expired-access", get(expired::show))
        .route("/workspaces/{ws}/requests", get(requests::show))
        .route("/workspaces/{ws}/requests/{id}/{verdict}", post(requests::decide))
        .route("/workspaces/{ws}/history", get(history::show))
        .route("/workspaces/{ws}/history/{id}", get(history::event))
        .route("/admin/workspaces", get(admin::workspaces))
        .route("/admin/users", get(directory::users).post(directory::create_user))
        .route("/admin/users/{user}", get(account::show).post(account::update))
        .route("/admin/users/{user}/active", post(directory::set_active))
        .route("/admin/users/{user}/sessions/end", post(account::end_sessions))
        .route("/admin/groups", get(directory::groups).post(directory::create_group))
        .route("/admin/groups/{group}", get(directory::group))
        .route("/admin/groups/{group}/members", post(directory::add_member))
        .route("/admin/groups/{group}/rename", post(directory::rename_group))
        .route("/admin/groups/{group}/delete", post(directory::delete_group))
        .route("/admin/groups/{group}/members/{user}/remove", post(directory::remove_member))
        .route("/admin/settings", get(directory::settings).post(directory::save_settings))
        .route("/admin/settings/verify", post(directory::verify))
        .route("/admin/platforms", get(platforms::list).post(platforms::create))
        .route("/admin/platforms/{platform}", get(platforms::show).post(platforms::update))
        .route("/admin/platforms/{platform}/landing-zones", post(platforms::create_zone))
        .route(
            "/admin/platforms/{platform}/landing-zones/{zone}",
            get(platforms::show_zone).post(platforms::update_zone),
        )
        .route("/admin/platforms/{platform}/landing-zones/{zone}/delete", post(platforms::delete_zone))
        .route("/admin/platforms/{platform}/deletions/{id}/{verdict}", post(platforms::decide_deletion))
        .route("/admin/catalogue", get(catalogue::show))
        .route("/admin/catalogue/roles", post(catalogue::create_role))
        .route("/admin/catalogue/tags", post(catalogue::create_tag))
        .route("/admin/catalogue/roles/{role}", get(catalogue::show_role).post(catalogue::update_role))
        .route("/admin/catalogue/roles/{role}/delete", post(catalogue::delete_role))
        .route("/admin/catalogue/tags/{tag}", get(catalogue::show_tag).post(catalogue::update_tag))
        .route("/admin/catalogue/tags/{tag}/delete", post(catalogue::delete_tag))
        .route("/workspaces/{ws}/payment-methods", get(catalogue::payments).post(catalogue::create_method))
        .route("/workspaces/{ws}/payment-methods/{id}", post(catalogue::update_method))
        .route("/workspaces/{ws}/payment-methods/{id}/delete", post(catalogue::delete_method))
        .route("/admin/emergency", get(emergency::show))
        .route("/admin/emergency/grant", post(emergency::grant))
        .route("/admin/emergency/revoke", post(emergency::revoke))
        .route("/admin/emergency/revocations/{id}", get(emergency::receipt))
        .route("/workspaces/{ws}/access", get(access::workspace).post(access::invite))
        .route("/workspaces/{ws}/access/search", get(access::search))
        .route("/workspaces/{ws}/access/{subject}", post(access::change_member))
        .route("/workspaces/{ws}/access/{subject}/remove", get(access::confirm_removal).post(access::remove_member))
        .layer(axum::middleware::map_response(secure_headers))
}

/// What every page of the UI answers with: no framing by other sites, no
/// script or style from anywhere but Canopy itself, no guessing of types.
async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// A page rendered, or a plain error if the template fails (it cannot, but
/// for values a template's own checks refuse).
pub(crate) fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The answer for a path that is neither the API's nor a page.
pub fn not_found() -> Response {
    form::UiError::App(canopy_app::Error::not_found("there is no page at this address")).into_response()
}
