//! Request extractors whose failures are problem details naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. A malformed body is a 400; a missing or mistyped field is a
/// 422 that names it.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let ct = ct.split(';').next().unwrap_or("").trim();
            ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::BadRequest("send the body as JSON with Content-Type: application/json".into()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserialize JSON, turning serde's errors into field errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        let msg = strip_position(&inner.to_string());
        field_error(&path, &msg)
    })
}

/// A query string. A missing or mistyped parameter is a 422 that names it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            field_error(&path, &msg)
        })
    }
}

/// serde names a missing field in the message rather than the path; put it in the path.
fn field_error(path: &str, msg: &str) -> ApiError {
    let (field, message) = match msg.strip_prefix("missing field `").and_then(|r| r.split_once('`')) {
        Some((name, _)) => {
            let field = if path == "." || path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
            (field, "is required".to_owned())
        }
        None => match msg.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
            Some((name, rest)) => {
                let field = if path == "." || path.is_empty() { name.to_owned() } else { path.to_owned() };
                (
                    field,
                    format!(
                        "is not a known field{}",
                        rest.trim_start_matches(',').split_once(',').map_or(String::new(), |(_, r)| format!(";{r}"))
                    ),
                )
            }
            None => (if path == "." { "body".to_owned() } else { path.to_owned() }, msg.to_owned()),
        },
    };
    ApiError::invalid(&field, message)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
