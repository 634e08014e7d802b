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
        if !is_json(&req) {
            return Err(ApiError::BadRequest("send the body as JSON with Content-Type: application/json".into()));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out: an empty body reads as `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(ApiError::BadRequest("send the body as JSON with Content-Type: application/json".into()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// How long a request's whole body may take to arrive, set per connection by
/// [`crate::listen::serve`] (a trickling body must not hold a connection
/// slot for ever, however often it sends a byte).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub std::time::Duration);

/// Read the whole body within the connection's [`BodyDeadline`] (408 after it).
pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyDeadline>().map(|d| d.0);
    let read = Bytes::from_request(req, state);
    let bytes = match deadline {
        Some(d) => tokio::time::timeout(d, read)
            .await
            .map_err(|_| ApiError::Timeout(format!("the body did not arrive within {} s", d.as_secs())))?,
        None => read.await,
    };
    bytes.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))
}

fn is_json(req: &Request) -> bool {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim();
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    })
}

/// Whether any string of a JSON document, decoded, holds a NUL character
/// (which PostgreSQL text cannot store).
fn holds_nul(bytes: &[u8]) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(walk),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| walk(&v))
}

/// Deserialize JSON, turning serde's errors into field errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) && holds_nul(bytes) {
        return Err(ApiError::BadRequest("text in the body must not contain NUL characters".into()));
    }
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

/// Path parameters. A path that cannot be read (bad percent-encoding, a NUL
/// character) names no resource: 404 problem details.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().to_owned();
        let not_found = || ApiError::not_found(format!("no resource has the path {path:?}"));
        if contains_nul_escape(parts.uri.path()) {
            return Err(not_found());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(_) => Err(not_found()),
        }
    }
}

/// Whether a URI part carries a percent-encoded NUL, which no stored text may hold.
fn contains_nul_escape(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// The longest value any query parameter may have. Each parameter documents
/// its own (shorter) bound where it has one; this one holds for all.
pub const MAX_QUERY_VALUE: usize = 2000;

/// A query string. A missing or mistyped parameter, or one longer than
/// [`MAX_QUERY_VALUE`], is a 422 that names it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        if contains_nul_escape(q) {
            return Err(ApiError::BadRequest("query parameters must not contain NUL characters".into()));
        }
        if let Some((name, _)) = form_urlencoded::parse(q.as_bytes()).find(|(_, v)| v.chars().count() > MAX_QUERY_VALUE)
        {
            let name: String = name.chars().take(64).collect();
            return Err(ApiError::invalid(&name, format!("must be at most {MAX_QUERY_VALUE} characters")));
        }
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

/// The client's address: the peer, or, when the peer is a trusted reverse
/// proxy ([`crate::ServerConfig::trusted_proxies`]), the right-most address
/// of `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

impl FromRequestParts<crate::AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &crate::AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal("the listener gave no peer address".into()))?;
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        Ok(ClientAddress(client_address(peer, forwarded, &app.config.trusted_proxies)))
    }
}

/// See [`ClientAddress`]. Unparseable entries end the walk (what a client
/// wrote before the first trusted proxy cannot be trusted).
pub fn client_address<'a>(
    peer: std::net::IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    let canonical = |ip: std::net::IpAddr| ip.to_canonical();
    let trusted = |ip: std::net::IpAddr| trusted.iter().any(|t| t.to_canonical() == canonical(ip));
    let peer = canonical(peer);
    if !trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = canonical(ip);
                if !trusted(client) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// An address as proxies write it in `X-Forwarded-For`: bare, with a port
/// (`192.0.2.7:5678`), or bracketed IPv6 with or without a port.
fn parse_hop(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn se2_the_client_address_is_the_peer_unless_a_trusted_proxy_forwards() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        // a client cannot name itself: its X-Forwarded-For is ignored
        assert_eq!(client_address(ip("192.0.2.9"), ["203.0.113.5"].into_iter(), &trusted), ip("192.0.2.9"));
        // behind the proxy: the right-most untrusted hop, not what the client prepended
        assert_eq!(client_address(proxy, ["198.51.100.1, 203.0.113.5"].into_iter(), &trusted), ip("203.0.113.5"));
        assert_eq!(
            client_address(proxy, ["198.51.100.1", "203.0.113.5, 10.0.0.2"].into_iter(), &trusted),
            ip("203.0.113.5")
        );
        // ports, brackets and IPv4-mapped peers as proxies write them
        assert_eq!(client_address(proxy, ["203.0.113.5:5678"].into_iter(), &trusted), ip("203.0.113.5"));
        assert_eq!(client_address(proxy, ["[2001:db8::1]:443"].into_iter(), &trusted), ip("2001:db8::1"));
        assert_eq!(client_address(proxy, ["[2001:db8::1]"].into_iter(), &trusted), ip("2001:db8::1"));
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(client_address(mapped, ["203.0.113.5"].into_iter(), &trusted), ip("203.0.113.5"));
        // no header, or garbage: the proxy itself
        assert_eq!(client_address(proxy, std::iter::empty(), &trusted), proxy);
        assert_eq!(client_address(proxy, ["not-an-address"].into_iter(), &trusted), proxy);
    }
}
