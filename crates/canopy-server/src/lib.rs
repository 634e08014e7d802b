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
pub mod mapping;
pub mod metrics;
pub mod oidc;
pub mod routes;
pub mod scim;
pub mod ui;

pub use bootstrap::{BootstrapError, BootstrapOutcome, bootstrap};

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a session (a token from `POST /auth/token`, a sign-in to
    /// the web UI) stays valid at most.
    pub session_ttl: time::Duration,
    /// How long a session of the web UI stays valid unused.
    pub session_idle: time::Duration,
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
    /// The bearer token `GET /metrics` wants; `None`: the metrics are open
    /// (they name no person, tenant or address).
    pub metrics_token: Option<String>,
    /// The OpenID Connect provider people sign in with besides local
    /// accounts (ID1); its callback is `{public_url}/auth/oidc/callback`,
    /// so it needs `public_url`.
    pub oidc: Option<oidc::OidcSettings>,
    /// Who may sign in with a password: everyone, or admins alone
    /// (break-glass) where people sign in through `oidc`.
    pub local_sign_in: canopy_domain::signin::LocalSignIn,
}

impl ServerConfig {
    /// The lifetime of a session token of the REST API.
    pub fn api_lifetime(&self) -> canopy_app::session::Lifetime {
        canopy_app::session::Lifetime { absolute: self.session_ttl, idle: None }
    }

    /// The lifetime of a sign-in to the web UI: it also ends unused.
    pub fn ui_lifetime(&self) -> canopy_app::session::Lifetime {
        canopy_app::session::Lifetime { absolute: self.session_ttl, idle: Some(self.session_idle) }
    }

    /// Whether users reach Canopy over HTTPS, so that its cookies are `Secure`.
    pub fn https(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ServerConfig>,
    /// What use cases ask platforms directly (a tenant's plan, resources
    /// before a deletion): the engine, behind the application layer's port.
    pub platforms: Arc<dyn canopy_app::platforms::Platforms>,
    /// The bound on password hashing (SE1).
    pub passwords: Arc<auth::PasswordHashing>,
    /// What `GET /metrics` reports: this application's own registry.
    pub metrics: Arc<metrics::Metrics>,
    /// The OpenID Connect provider, when one is configured with a public URL.
    pub oidc: Option<Arc<oidc::Oidc>>,
}

impl AppState {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: ServerConfig,
        platforms: Arc<dyn canopy_app::platforms::Platforms>,
    ) -> Self {
        let metrics = Arc::new(metrics::Metrics::new(Default::default(), config.metrics_token.as_deref()));
        let oidc = match (&config.oidc, &config.public_url) {
            (Some(settings), Some(public_url)) => Some(Arc::new(oidc::Oidc::new(settings.clone(), public_url))),
            _ => None,
        };
        Self {
            store,
            clock,
            config: Arc::new(config),
            platforms,
            passwords: Arc::new(auth::PasswordHashing::per_core()),
            metrics,
            oidc,
        }
    }

    /// Report what `registry` holds on `GET /metrics` too (the engine's
    /// series), beside the server's own, which are registered into it.
    pub fn with_registry(mut self, registry: prometheus_client::registry::Registry) -> Self {
        self.metrics = Arc::new(metrics::Metrics::new(registry, self.config.metrics_token.as_deref()));
        self
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
        .routes(routes!(session::redeem_sso_code))
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
pub fn openapi() -> serde_json::Value {
    every_answer_documented(&api().into_openapi())
}

/// What every operation may answer besides what its own annotation lists,
/// so that the document tells a generated client the whole truth (SE8):
/// errors are `application/problem+json`; every operation may answer 400
/// (a body or query that cannot be read); a secured one 401 and 403; one
/// with path parameters 404; one that takes input 422 (a field, or an
/// unknown or overlong parameter); one that writes 409 (a conflict, or a
/// concurrent change to retry). Query parameters carry the length every
/// parameter is held to ([`extract::MAX_QUERY_VALUE`]).
///
/// The document is completed as JSON: utoipa's types do not read their own
/// output back.
fn every_answer_documented(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::{Value, json};
    let Ok(mut v) = serde_json::to_value(doc) else { return Value::Null };
    let problem = |description: &str| {
        json!({"description": description,
            "content": {canopy_api_types::problem::PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, op) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "put" | "post" | "patch" | "delete") {
                    continue;
                }
                let Some(op) = op.as_object_mut() else { continue };
                let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
                let params = op.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
                let input = params || op.contains_key("requestBody");
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for p in params.iter_mut() {
                        let is_query = p.get("in").and_then(Value::as_str) == Some("query");
                        if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut)
                            && is_query
                            && schema_is_string(schema)
                            && !schema.contains_key("maxLength")
                        {
                            schema.insert("maxLength".into(), json!(extract::MAX_QUERY_VALUE));
                        }
                    }
                }
                let mut extra = vec![(
                    "400",
                    "The request could not be read: malformed JSON, a wrong content type, NUL characters",
                )];
                if secured {
                    extra.push(("401", "No valid token or API key (`WWW-Authenticate: Bearer`)"));
                    extra.push(("403", "The caller may not do this"));
                }
                if path.contains('{') {
                    extra.push(("404", "No such resource, or a path segment that names none"));
                }
                if method != "get" {
                    extra.push((
                        "409",
                        "A conflict with the current state, or with a change made at the same time: retry",
                    ));
                }
                if input {
                    extra.push(("422", "A field or parameter is invalid, unknown or too long; `errors` names each"));
                }
                if op.contains_key("requestBody") {
                    extra.push(("408", "The body did not arrive in time"));
                }
                let Some(responses) = op.entry("responses").or_insert_with(|| json!({})).as_object_mut() else {
                    continue;
                };
                for (code, description) in extra {
                    responses.entry(code).or_insert_with(|| problem(description));
                }
                for (code, answer) in responses.iter_mut() {
                    if code.starts_with('2') {
                        continue;
                    }
                    let Some(content) = answer.get_mut("content").and_then(Value::as_object_mut) else { continue };
                    if let Some(json_body) = content.remove("application/json") {
                        content.insert(canopy_api_types::problem::PROBLEM_CONTENT_TYPE.into(), json_body);
                    }
                }
            }
        }
    }
    v
}

/// Whether a parameter's schema is a string (`"type": "string"` or a list holding it).
fn schema_is_string(schema: &serde_json::Map<String, serde_json::Value>) -> bool {
    match schema.get("type") {
        Some(serde_json::Value::String(t)) => t == "string",
        Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api_router, doc) = api().split_for_parts();
    let doc = Arc::new(every_answer_documented(&doc));
    api_router
        .route("/api/v1/openapi.json", get(move || async move { axum::Json(doc.as_ref().clone()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(routes::health::ready))
        .route("/metrics", get(metrics::scrape))
        .merge(ui::router())
        .nest("/scim/v2", scim::router())
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") { no_route() } else { ui::not_found() }
        })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
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
