//! `GET /metrics`: what the server, the engine and the database report, in
//! the Prometheus text format (version 0.0.4).
//!
//! Every application has its own [`Metrics`] over its own `Registry`
//! (prometheus-client, no global recorder): the binary registers the
//! engine's instruments into the registry it hands to [`AppState`], and
//! tests that run many applications in one process each read their own
//! numbers.
//!
//! Three kinds of series:
//! - counted here, at the HTTP edge: request durations by route template
//!   (axum's `MatchedPath`, never the raw path; requests no route matched
//!   share [`UNMATCHED`]), method and status; sign-ins refused as wrong and
//!   throttled;
//! - counted by whoever registered into the registry (the engine: platform
//!   calls and runs in flight);
//! - read from the database at scrape time ([`canopy_store::Store::backlog`]:
//!   tenants waiting for replication and the oldest, tenants leased, mails
//!   waiting and the oldest), so that every node reports the installation's
//!   figures, never its own guess.
//!
//! Every label takes values from a bounded set (route templates, methods,
//! status codes, platform types, outcomes): nothing a client sends becomes a
//! label, and no label names a person, tenant or address.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::AppState;

/// The route label of a request no route matched (a 404 `no_route`).
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the request-duration buckets, in seconds: 1 ms to 10 s
/// (a sign-in hashes a password for tens of milliseconds; a plan asks a
/// platform).
const HTTP_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    /// `locked`: a counter of attempts locks it (429); `busy`: too many
    /// passwords being hashed at once (503).
    reason: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The metrics of one application.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    sign_in_failures: Counter,
    sign_ins_throttled: Family<ThrottleLabels, Counter>,
    /// The token `GET /metrics` wants (its SHA-256), when one is set.
    token: Option<[u8; 32]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Registry::default(), None)
    }
}

impl Metrics {
    /// The server's own series, registered into `registry` beside what is
    /// there already (the engine's). With a `token`, `GET /metrics` answers
    /// only a request that sends it as `Authorization: Bearer`.
    pub fn new(mut registry: Registry, token: Option<&str>) -> Self {
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            request_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "canopy_http_request_duration",
            "HTTP requests answered, by route template, method and status",
            Unit::Seconds,
            requests.clone(),
        );
        let sign_in_failures = Counter::default();
        registry.register(
            "canopy_sign_in_failures",
            "Sign-ins refused for a wrong username or password (or an inactive account)",
            sign_in_failures.clone(),
        );
        let sign_ins_throttled = Family::<ThrottleLabels, Counter>::default();
        registry.register(
            "canopy_sign_ins_throttled",
            "Sign-ins refused before their password was checked: locked by throttling (429) or shed as busy (503)",
            sign_ins_throttled.clone(),
        );
        Metrics {
            registry,
            requests,
            sign_in_failures,
            sign_ins_throttled,
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    /// A sign-in refused for a wrong username or password.
    pub fn sign_in_failed(&self) {
        self.sign_in_failures.inc();
    }

    /// A sign-in refused by throttling (`busy`: shed rather than locked).
    pub fn sign_in_throttled(&self, busy: bool) {
        let reason = if busy { "busy" } else { "locked" };
        self.sign_ins_throttled.get_or_create(&ThrottleLabels { reason }).inc();
    }

    fn observe(&self, route: String, method: &Method, status: StatusCode, seconds: f64) {
        let labels = RequestLabels { route, method: method_label(method), status: status.as_u16() };
        self.requests.get_or_create(&labels).observe(seconds);
    }

    /// Whether a scrape may read the metrics: always without a token, else
    /// only with it (compared as digests, in constant time over their length).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.token else { return true };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(given) = given else { return false };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Methods are labelled by name when HTTP defines them, else `other`: a
/// client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware around every route: the request's span (exported as a trace
/// when OpenTelemetry is configured) and its duration by route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let route = route.unwrap_or_else(|| UNMATCHED.to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format_args!("{} {route}", method_label(&method)),
        otel.kind = "server",
        http.request.method = method_label(&method),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", res.status().as_u16());
    metrics.observe(route, &method, res.status(), started.elapsed().as_secs_f64());
    res
}

/// `GET /metrics`: the registry, then the database's figures read now.
pub async fn scrape(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if !app.metrics.admits(&headers) {
        let mut res = (StatusCode::UNAUTHORIZED, "send Authorization: Bearer <metrics token>\n").into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let now = app.clock.now();
    let backlog = match app.store.backlog(now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            return (StatusCode::SERVICE_UNAVAILABLE, "database not reachable\n").into_response();
        }
    };
    let mut body = String::new();
    let encoded =
        prometheus_client::encoding::prometheus_text::encode(&mut body, &app.metrics.registry).and_then(|()| {
            let database = database_registry(&backlog, app.store.writer_counts(), now);
            prometheus_client::encoding::prometheus_text::encode(&mut body, &database)
        });
    if let Err(e) = encoded {
        tracing::error!(error = %e, "metrics could not be encoded");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let content_type = HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The database's figures in a registry made for this scrape alone:
/// concurrent scrapes never see each other's half-written values. The
/// backlog as gauges; on SQLite, what its single writer committed since the
/// process started, as counters.
fn database_registry(
    b: &canopy_store::Backlog,
    writer: Option<canopy_store::WriterCounts>,
    now: time::OffsetDateTime,
) -> Registry {
    let mut registry = Registry::default();
    let age = |since: Option<time::OffsetDateTime>| {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(since.map(|t| (now - t).as_seconds_f64().max(0.0)).unwrap_or(0.0));
        g
    };
    let count = |n: i64| {
        let g = Gauge::<i64>::default();
        g.set(n);
        g
    };
    registry.register(
        "canopy_replication_queue_depth",
        "Dirty tenants waiting to be replicated (due now or backing off), no run holding them",
        count(b.tenants_waiting),
    );
    registry.register_with_unit(
        "canopy_replication_oldest_waiting_age",
        "How long the tenant waiting longest has been dirty (0 when none waits)",
        Unit::Seconds,
        age(b.oldest_tenant_marked_at),
    );
    registry.register(
        "canopy_replication_tenants_leased",
        "Tenants a replication run of any node holds a lease on now",
        count(b.tenants_leased),
    );
    registry.register("canopy_outbox_mails_waiting", "E-mails in the outbox not sent yet", count(b.mails_waiting));
    registry.register_with_unit(
        "canopy_outbox_oldest_mail_age",
        "How long the oldest unsent e-mail has waited (0 when none waits)",
        Unit::Seconds,
        age(b.oldest_mail_created_at),
    );
    if let Some(w) = writer {
        let total = |n: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(n);
            c
        };
        registry.register(
            "canopy_sqlite_commits",
            "COMMITs of SQLite's single writer since this process started, each one flush to disk",
            total(w.commits),
        );
        registry.register(
            "canopy_sqlite_transactions_committed",
            "Write transactions those COMMITs committed (several to one under concurrent writes: group commit)",
            total(w.transactions),
        );
        let held = Counter::<f64, AtomicU64>::default();
        held.inc_by(w.held.as_secs_f64());
        registry.register_with_unit(
            "canopy_sqlite_writer_held",
            "How long write transactions held SQLite's single writer, COMMITs included (its busy time)",
            Unit::Seconds,
            held,
        );
    }
    registry
}
