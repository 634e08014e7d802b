//! Every error a client sees: RFC 9457 problem details.
//!
//! Internal causes are logged, never sent: a client learns what it can act on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_api_types::{FieldError, Problem, problem::PROBLEM_CONTENT_TYPE};
use canopy_domain::Denied;
use canopy_store::StoreError;

/// An error answer of the API.
#[derive(Debug)]
pub enum ApiError {
    /// 422: fields of the request are invalid.
    Invalid(Vec<FieldError>),
    /// 400: the request could not be read at all (malformed JSON, wrong content type).
    BadRequest(String),
    /// 401: no or invalid credentials.
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    Forbidden(String),
    /// 404: the named resource does not exist.
    NotFound(String),
    /// 409: conflicts with the current state (duplicate, in use, last owner).
    Conflict { detail: String, field: Option<String> },
    /// 429: too many attempts; retry after this many seconds.
    TooManyRequests { detail: String, retry_after: i64 },
    /// 408: the request's body did not arrive in time.
    Timeout(String),
    /// 503: the server sheds this request to stay within its bounds; retry
    /// after this many seconds.
    Unavailable { detail: String, retry_after: i64 },
    /// 502: a cloud platform Canopy asked on the client's behalf failed;
    /// the detail is the platform's own message.
    Upstream(String),
    /// 500: a fault on our side; the cause is logged, not returned.
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError { field: field.to_owned(), message: message.into() }])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict { detail: detail.into(), field: None }
    }

    pub fn conflict_on(field: &str, detail: impl Into<String>) -> Self {
        Self::Conflict { detail: detail.into(), field: Some(field.to_owned()) }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Invalid request"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", "Malformed request"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too many requests"),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "platform_failed", "The platform failed"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Busy"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", "Request timeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        let (detail, errors) = match self {
            Self::Invalid(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                (format!("invalid field(s): {}", fields.join(", ")), errors.clone())
            }
            Self::Conflict { detail, field: Some(f) } => {
                (detail.clone(), vec![FieldError { field: f.clone(), message: detail.clone() }])
            }
            Self::Internal(_) => ("something went wrong on the server; it has been logged".to_owned(), vec![]),
            Self::BadRequest(d)
            | Self::Unauthenticated(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Timeout(d)
            | Self::Upstream(d) => (d.clone(), vec![]),
            Self::Conflict { detail, .. } | Self::TooManyRequests { detail, .. } | Self::Unavailable { detail, .. } => {
                (detail.clone(), vec![])
            }
        };
        Problem {
            type_: format!("urn:canopy:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        }
    }
}

/// A problem+json response with any status (also used by the router fallbacks).
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let mut res = problem_response(&self.to_problem());
        match &self {
            Self::TooManyRequests { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            Self::Unauthenticated(_) => {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Timeout(_) => {
                // the rest of a body that came too slowly is not waited for
                res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::conflict("this conflicts with a change made at the same time; retry"),
            StoreError::InvalidText => {
                Self::BadRequest("the request holds text that cannot be stored (NUL characters)".into())
            }
            // a change without its history event: a bug, refused and logged as a 500
            e @ StoreError::Unrecorded(_) => Self::Internal(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<canopy_app::Error> for ApiError {
    fn from(e: canopy_app::Error) -> Self {
        use canopy_app::Error as E;
        match e {
            E::Invalid(errors) => {
                Self::Invalid(errors.into_iter().map(|e| FieldError { field: e.field, message: e.message }).collect())
            }
            E::Unreadable(d) => Self::BadRequest(d),
            E::Forbidden(d) => Self::Forbidden(d),
            E::Unauthenticated(d) => Self::Unauthenticated(d),
            E::NotFound(d) => Self::NotFound(d),
            E::Conflict { detail, field } => Self::Conflict { detail, field },
            E::TooManyRequests { detail, retry_after } => Self::TooManyRequests { detail, retry_after },
            E::Unavailable { detail, retry_after } => Self::Unavailable { detail, retry_after },
            E::Upstream(d) => Self::Upstream(d),
            E::Scim(e) => Self::BadRequest(e.detail),
            E::PreconditionFailed(detail) => Self::Conflict { detail, field: None },
            E::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        Self::Forbidden(d.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Parse every field of a request at once and collect all errors, so that a
/// client learns about each invalid field in one answer:
///
/// ```text
/// validate! {
///     identifier: "identifier" => Identifier::parse(&body.identifier),
///     display_name: "display_name" => DisplayName::parse(&body.display_name),
/// }
/// ```
/// binds `identifier` and `display_name` to the parsed values, or returns a 422.
#[macro_export]
macro_rules! validate {
    ($($name:ident : $field:expr => $parse:expr),+ $(,)?) => {
        let mut __errors: Vec<canopy_api_types::FieldError> = Vec::new();
        $(
            let $name = match $parse {
                Ok(v) => Some(v),
                Err(e) => {
                    __errors.push(canopy_api_types::FieldError { field: ($field).to_string(), message: e.to_string() });
                    None
                }
            };
        )+
        let ($($name,)+) = match ($($name,)+) {
            ($(Some($name),)+) => ($($name,)+),
            _ => return Err($crate::error::ApiError::Invalid(__errors)),
        };
    };
}
