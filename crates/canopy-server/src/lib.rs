//! Canopy's HTTP surface: the only crate that knows HTTP.
//!
//! [`router`] assembles every route of the REST API (one module per resource
//! under [`routes`], one function per operation) together with the OpenAPI
//! document that describes them: both come from the same `routes!` calls, so
//! a route cannot exist without its documentation.

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use canopy_domain::clock::Clock;
use canopy_store::Store;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
pub mod bootstrap;
pub mod error;
pub mod extract;
pub mod listen;
pub mod routes;

pub use bootstrap::{BootstrapError, BootstrapOutcome, bootstrap};

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a session token from `POST /auth/token` stays valid.
    pub session_ttl: time::Duration,
    /// The address users reach Canopy at, for links in e-mails.
    pub public_url: Option<String>,
    /// The key that encrypts platform secrets at rest.
    pub secret_key: canopy_store::SecretKey,
    /// Reverse proxies whose `X-Forwarded-For` names the client (sign-in
    /// throttling counts per client address, SE2). A request from any other
    /// peer is that peer's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The key that signs history checkpoints (SE7), kept outside the database.
    pub history_key: canopy_domain::checkpoint::HistoryKey,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ServerConfig>,
    /// The replication engine, for what asks a platform directly (a tenant's plan).
    pub replicator: Arc<canopy_engine::replication::Replicator>,
    /// The bound on password hashing (SE1).
    pub passwords: Arc<auth::PasswordHashing>,
}

impl AppState {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: ServerConfig,
        replicator: Arc<canopy_engine::replication::Replicator>,
    ) -> Self {
        Self {
            store,
            clock,
            config: Arc::new(config),
            replicator,
            passwords: Arc::new(auth::PasswordHashing::per_core()),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Canopy", description = "Multi-cloud governance control plane: workspaces, projects, access and history."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth"), (name = "users"), (name = "groups"), (name = "api-keys"),
        (name = "workspaces"), (name = "members"), (name = "projects"), (name = "bindings"),
        (name = "project-roles"), (name = "history"), (name = "admin"), (name = "platforms"), (name = "tenants"), (name = "deletion"), (name = "requests"), (name = "settings"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The routes of the REST API with their OpenAPI document.
fn api() -> OpenApiRouter<AppState> {
    use routes::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::create_token, session::delete_token))
        .routes(routes!(session::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::show, users::update, users::delete))
        .routes(routes!(users::end_sessions))
        .routes(routes!(groups::list, groups::create))
        .routes(routes!(groups::show, groups::update, groups::delete))
        .routes(routes!(groups::list_members, groups::add_member))
        .routes(routes!(groups::remove_member))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::delete))
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(workspaces::show, workspaces::update, workspaces::delete))
        .routes(routes!(members::list, members::invite))
        .routes(routes!(members::update, members::remove))
        .routes(routes!(members::search))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::show, projects::update, projects::delete))
        .routes(routes!(bindings::list, bindings::create))
        .routes(routes!(bindings::update, bindings::delete))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::show, tenants::delete))
        .routes(routes!(tenants::replicate))
        .routes(routes!(tenants::plan))
        .routes(routes!(deletion::show))
        .routes(routes!(deletion::confirm))
        .routes(routes!(deletion::pending))
        .routes(routes!(deletion::engineer_confirm))
        .routes(routes!(deletion::engineer_decline))
        .routes(routes!(project_roles::list, project_roles::create))
        .routes(routes!(project_roles::update, project_roles::delete))
        .routes(routes!(history::list))
        .routes(routes!(history::show))
        .routes(routes!(admin::workspaces))
        .routes(routes!(history::installation))
        .routes(routes!(platforms::list, platforms::create))
        .routes(routes!(platforms::show, platforms::update, platforms::delete))
        .routes(routes!(platforms::list_landing_zones, platforms::create_landing_zone))
        .routes(routes!(platforms::show_landing_zone, platforms::update_landing_zone, platforms::delete_landing_zone))
        .routes(admin::verify_routes())
        .routes(routes!(admin::checkpoints))
        .routes(routes!(emergency::grant))
        .routes(routes!(emergency::revoke))
        .routes(routes!(emergency::show))
        .routes(routes!(expired_access::workspace))
        .routes(routes!(expired_access::installation))
        .routes(routes!(tag_definitions::list, tag_definitions::create))
        .routes(routes!(tag_definitions::update, tag_definitions::delete))
        .routes(routes!(payment_methods::list, payment_methods::create))
        .routes(routes!(payment_methods::update, payment_methods::delete))
        .routes(routes!(payment_methods::forecast))
        .routes(routes!(requests::list))
        .routes(routes!(requests::show))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::decline))
        .routes(routes!(requests::admin_list))
        .routes(routes!(settings::show, settings::update))
}

/// The OpenAPI document of the REST API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api_router, doc) = api().split_for_parts();
    let doc = Arc::new(doc);
    api_router
        .route("/api/v1/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(routes::health::ready))
        .fallback(|| async { no_route() })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .with_state(state)
}

/// The answer for a path no route serves. Its code, `no_route`, tells a
/// missing route apart from a missing resource (`not_found`).
fn no_route() -> axum::response::Response {
    error::problem_response(&canopy_api_types::Problem {
        type_: "urn:canopy:problem:no_route".into(),
        title: "No such route".into(),
        status: 404,
        detail: "no API route has this path; see /api/v1/openapi.json".into(),
        code: "no_route".into(),
        errors: vec![],
    })
}

fn method_not_allowed() -> axum::response::Response {
    let mut res = error::problem_response(&canopy_api_types::Problem {
        type_: "urn:canopy:problem:method_not_allowed".into(),
        title: "Method not allowed".into(),
        status: 405,
        detail: "this route does not accept this method; see /api/v1/openapi.json".into(),
        code: "method_not_allowed".into(),
        errors: vec![],
    });
    *res.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    res.into_response()
}
