//! The SCIM 2.0 service provider at `/scim/v2` (RFC 7644), over the use
//! cases of [`canopy_app::scim`]: identity providers (Microsoft Entra ID,
//! Okta, ...) provision Users and Groups here.
//!
//! A request is authenticated by an installation API key of the role
//! `scim_provisioner` and by nothing else; such a key opens nothing of the
//! REST API either. Errors are SCIM errors (`status`, `scimType`,
//! `detail`); answers are `application/scim+json`, with `ETag` and, for a
//! created resource, `Location`. Bodies are read as JSON whatever their
//! content type says (Okta sends none, others `application/json`).

mod discovery;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use canopy_app::scim::{self as uc, Base, ListQuery, Listed, Resource};
use canopy_domain::scim::{self, AttrName, Precondition, ScimType};
use serde_json::{Value, json};

use crate::AppState;

/// The largest request body read.
const MAX_BODY: usize = 1024 * 1024;
/// The page size when a list names none.
const DEFAULT_COUNT: i64 = 100;

/// The routes under `/scim/v2`.
pub fn router() -> Router<AppState> {
    let not_allowed = || axum::routing::any(|| async { ScimError::method_not_allowed() });
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config).fallback(not_allowed()))
        .route("/ResourceTypes", get(resource_types).fallback(not_allowed()))
        .route("/ResourceTypes/{id}", get(resource_type).fallback(not_allowed()))
        .route("/Schemas", get(schemas).fallback(not_allowed()))
        .route("/Schemas/{id}", get(schema).fallback(not_allowed()))
        .route("/Users", get(list_users).post(create_user).fallback(not_allowed()))
        .route("/Users/.search", post(not_implemented))
        .route("/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(delete_user))
        .route("/Groups", get(list_groups).post(create_group).fallback(not_allowed()))
        .route("/Groups/.search", post(not_implemented))
        .route("/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(delete_group))
        .route("/.search", post(not_implemented))
        .route("/Bulk", post(not_implemented))
        .route("/Me", axum::routing::any(not_implemented))
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no SCIM endpoint has this path") })
        .method_not_allowed_fallback(|| async { ScimError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

// ------------------------------------------------------------ errors

/// An error answer: a SCIM Error body (RFC 7644, section 3.12).
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<ScimType>,
    detail: String,
    retry_after: Option<i64>,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into(), retry_after: None }
    }

    fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, None, "this SCIM endpoint does not take this method")
    }

    fn syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidSyntax), detail)
    }
}

impl From<canopy_app::Error> for ScimError {
    fn from(e: canopy_app::Error) -> Self {
        use canopy_app::Error as E;
        match e {
            E::Invalid(errors) => {
                let detail =
                    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                Self::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue), detail)
            }
            E::Scim(e) => Self::new(StatusCode::BAD_REQUEST, Some(e.scim_type), e.detail),
            E::Unreadable(d) => Self::syntax(d),
            E::Forbidden(d) => Self::new(StatusCode::FORBIDDEN, None, d),
            E::Unauthenticated(d) => Self::new(StatusCode::UNAUTHORIZED, None, d),
            E::NotFound(d) => Self::new(StatusCode::NOT_FOUND, None, d),
            E::Conflict { detail, field } => {
                let unique = field.as_deref() == Some("uniqueness");
                Self::new(StatusCode::CONFLICT, unique.then_some(ScimType::Uniqueness), detail)
            }
            E::PreconditionFailed(d) => Self::new(StatusCode::PRECONDITION_FAILED, None, d),
            E::TooManyRequests { detail, retry_after } => {
                Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, None, detail) }
            }
            E::Unavailable { detail, retry_after } => {
                Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, None, detail) }
            }
            E::Upstream(d) => Self::new(StatusCode::BAD_GATEWAY, None, d),
            E::Internal(cause) => {
                tracing::error!(%cause, "SCIM request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "an internal error; it was logged")
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [scim::ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(o)) = (self.scim_type, body.as_object_mut()) {
            o.insert("scimType".into(), json!(t.as_str()));
        }
        let mut res = scim_json(self.status, &body);
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

type ScimResult<T> = Result<T, ScimError>;

async fn not_implemented() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "Canopy does not offer this SCIM feature (see /ServiceProviderConfig)",
    )
}

// ------------------------------------------------------------ the edge

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut res = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    res
}

/// The SCIM client: a principal authenticated by a `scim_provisioner` key.
pub struct ScimCaller(canopy_app::Principal);

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let unauthenticated = |d: &str| ScimError::new(StatusCode::UNAUTHORIZED, None, d);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| unauthenticated("send Authorization: Bearer <API key of the role scim_provisioner>"))?;
        let principal = canopy_app::principal::authenticate(&app.store, token, app.clock.now()).await?;
        if !principal.actor.scim_only() {
            return Err(ScimError::new(StatusCode::FORBIDDEN, None, canopy_domain::Denied::NeedsScimKey.to_string()));
        }
        Ok(Self(principal))
    }
}

/// Where this service provider's resources are: under the public URL when
/// one is configured, else under the address the request was sent to.
fn base(app: &AppState, headers: &HeaderMap) -> String {
    let root = match &app.config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{root}/scim/v2")
}

/// A request body, at most [`MAX_BODY`] bytes; refused as a SCIM error.
pub struct ScimBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("a body may be at most {MAX_BODY} bytes"),
            )),
            Err(e) => Err(ScimError::syntax(format!("the body could not be read: {}", e.body_text()))),
        }
    }
}

/// A request body as JSON.
fn body_json(body: &ScimBody) -> ScimResult<Value> {
    serde_json::from_slice(&body.0).map_err(|e| ScimError::syntax(format!("the body is not JSON: {e}")))
}

/// The query parameters a SCIM request may carry (names in any case).
#[derive(Default)]
struct Params {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Vec<AttrName>,
    excluded: Vec<AttrName>,
}

fn params(raw: Option<&str>) -> ScimResult<Params> {
    let mut p = Params::default();
    let number = |name: &str, v: &str| {
        v.trim().parse::<i64>().map_err(|_| {
            ScimError::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue), format!("{name} must be an integer"))
        })
    };
    let names = |v: &str| {
        scim::read_attribute_list(v).map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some(e.scim_type), e.detail))
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.to_ascii_lowercase().as_str() {
            "filter" => p.filter = Some(v.into_owned()),
            "startindex" => p.start_index = Some(number("startIndex", &v)?),
            "count" => p.count = Some(number("count", &v)?),
            "attributes" => p.attributes = names(&v)?,
            "excludedattributes" => p.excluded = names(&v)?,
            _ => {}
        }
    }
    Ok(p)
}

impl Params {
    fn list(&self) -> ScimResult<ListQuery> {
        let filter = match &self.filter {
            Some(f) => Some(
                canopy_domain::scim_filter::parse(f)
                    .map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some(ScimType::InvalidFilter), e.0))?,
            ),
            None => None,
        };
        Ok(ListQuery { filter, start_index: self.start_index.unwrap_or(1), count: self.count.unwrap_or(DEFAULT_COUNT) })
    }

    /// Whether a Group's members are answered.
    fn with_members(&self) -> bool {
        let is_members = |a: &AttrName| {
            a.extension.is_none() && a.attr.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("members"))
        };
        let asked = self.attributes.is_empty() || self.attributes.iter().any(is_members);
        asked && !self.excluded.iter().any(|a| is_members(a) && a.sub.is_none())
    }

    fn project(&self, mut body: Value) -> Value {
        scim::project(&mut body, &self.attributes, &self.excluded);
        body
    }
}

/// The `If-Match` precondition of a change, if any.
fn if_match(headers: &HeaderMap) -> Option<Precondition> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(Precondition::parse)
}

/// A resource answered with its `ETag` (and `Location` once created);
/// `304 Not Modified` to a GET whose `If-None-Match` names its version.
fn answer(status: StatusCode, r: Resource, p: &Params, headers: &HeaderMap) -> Response {
    let etag = scim::etag(r.version);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || Precondition::parse(v).holds(r.version));
    let mut res = if unchanged && status == StatusCode::OK {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        scim_json(status, &p.project(r.body))
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&r.location)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn list_answer(listed: Listed, p: &Params) -> Response {
    let resources: Vec<Value> = listed.resources.into_iter().map(|r| p.project(r)).collect();
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [scim::LIST_RESPONSE],
            "totalResults": listed.total,
            "startIndex": listed.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

fn patch_ops(body: &ScimBody) -> ScimResult<Vec<scim::PatchOp>> {
    scim::read_patch(&body_json(body)?)
        .map_err(|e| ScimError::new(StatusCode::BAD_REQUEST, Some(e.scim_type), e.detail))
}

// ------------------------------------------------------------ discovery

async fn service_provider_config(State(app): State<AppState>, _: ScimCaller, headers: HeaderMap) -> Response {
    scim_json(StatusCode::OK, &discovery::service_provider_config(&base(&app, &headers)))
}

fn listed(items: Vec<Value>) -> Response {
    let total = items.len() as i64;
    list_answer(Listed { total, start_index: 1, resources: items }, &Params::default())
}

fn one_of(items: Vec<Value>, id: &str, what: &str) -> ScimResult<Response> {
    items
        .into_iter()
        .find(|i| i["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .map(|i| scim_json(StatusCode::OK, &i))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no {what} has the id {id:?}")))
}

async fn resource_types(State(app): State<AppState>, _: ScimCaller, headers: HeaderMap) -> Response {
    listed(discovery::resource_types(&base(&app, &headers)))
}

async fn resource_type(
    State(app): State<AppState>,
    _: ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    one_of(discovery::resource_types(&base(&app, &headers)), &id, "resource type")
}

async fn schemas(State(app): State<AppState>, _: ScimCaller, headers: HeaderMap) -> Response {
    listed(discovery::schemas(&base(&app, &headers)))
}

async fn schema(
    State(app): State<AppState>,
    _: ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    one_of(discovery::schemas(&base(&app, &headers)), &id, "schema")
}

// ------------------------------------------------------------ Users

async fn list_users(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let listed = uc::list_users(&app.store, &by, Base(&base), &p.list()?).await?;
    Ok(list_answer(listed, &p))
}

async fn create_user(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: ScimBody,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let r = uc::create_user(&app.store, &by, app.clock.now(), Base(&base), &body_json(&body)?).await?;
    Ok(answer(StatusCode::CREATED, r, &p, &headers))
}

async fn get_user(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let r = uc::get_user(&app.store, &by, Base(&base), &id).await?;
    Ok(answer(StatusCode::OK, r, &p, &headers))
}

async fn replace_user(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: ScimBody,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let pre = if_match(&headers);
    let doc = body_json(&body)?;
    let r = uc::replace_user(&app.store, &by, app.clock.now(), Base(&base), (&id, pre.as_ref()), &doc).await?;
    Ok(answer(StatusCode::OK, r, &p, &HeaderMap::new()))
}

async fn patch_user(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: ScimBody,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let pre = if_match(&headers);
    let ops = patch_ops(&body)?;
    let r = uc::patch_user(&app.store, &by, app.clock.now(), Base(&base), (&id, pre.as_ref()), &ops).await?;
    Ok(answer(StatusCode::OK, r, &p, &HeaderMap::new()))
}

async fn delete_user(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    uc::delete_user(&app.store, &by, app.clock.now(), (&id, if_match(&headers).as_ref())).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ Groups

async fn list_groups(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let listed = uc::list_groups(&app.store, &by, Base(&base), &p.list()?, p.with_members()).await?;
    Ok(list_answer(listed, &p))
}

async fn create_group(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: ScimBody,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let r = uc::create_group(&app.store, &by, app.clock.now(), Base(&base), &body_json(&body)?).await?;
    Ok(answer(StatusCode::CREATED, r, &p, &headers))
}

async fn get_group(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let r = uc::get_group(&app.store, &by, Base(&base), &id, p.with_members()).await?;
    Ok(answer(StatusCode::OK, r, &p, &headers))
}

async fn replace_group(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: ScimBody,
) -> ScimResult<Response> {
    let p = params(q.as_deref())?;
    let base = base(&app, &headers);
    let pre = if_match(&headers);
    let doc = body_json(&body)?;
    let r = uc::replace_group(&app.store, &by, app.clock.now(), Base(&base), (&id, pre.as_ref()), &doc).await?;
    Ok(answer(StatusCode::OK, r, &p, &HeaderMap::new()))
}

/// A Group PATCH answers `204 No Content` (RFC 7644 allows it; Microsoft
/// Entra ID expects it), so that a large group is not read to answer.
async fn patch_group(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: ScimBody,
) -> ScimResult<StatusCode> {
    let ops = patch_ops(&body)?;
    uc::patch_group(&app.store, &by, app.clock.now(), (&id, if_match(&headers).as_ref()), ops).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_group(
    State(app): State<AppState>,
    ScimCaller(by): ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    uc::delete_group(&app.store, &by, app.clock.now(), (&id, if_match(&headers).as_ref())).await?;
    Ok(StatusCode::NO_CONTENT)
}
