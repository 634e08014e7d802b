//! The UI's own style sheet and script and the vendored htmx, embedded in
//! the binary and served under `/assets/` with a long cache lifetime: each
//! name carries its version, so a new release never meets a stale copy.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The style sheet's address, versioned by the crate's version.
pub const CSS: &str = concat!("/assets/canopy-", env!("CARGO_PKG_VERSION"), ".css");
/// The UI's own script (type-ahead, confirmations).
pub const JS: &str = concat!("/assets/canopy-", env!("CARGO_PKG_VERSION"), ".js");
/// htmx, pinned (see `assets/vendor/README.md`).
pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";

const FILES: [(&str, &str, &[u8]); 3] = [
    (CSS, "text/css; charset=utf-8", include_bytes!("../../assets/canopy.css")),
    (JS, "text/javascript; charset=utf-8", include_bytes!("../../assets/canopy.js")),
    (HTMX, "text/javascript; charset=utf-8", include_bytes!("../../assets/vendor/htmx-2.0.11.min.js")),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let Some((_, content_type, body)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return super::not_found();
    };
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    res
}
