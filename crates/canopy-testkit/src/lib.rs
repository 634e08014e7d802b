//! Test support for Canopy's end-to-end tests.
//!
//! [`spawn_app`] starts the real HTTP application on `127.0.0.1:0` over a
//! fresh database (a SQLite file in a temporary directory, or a new database
//! in the PostgreSQL cluster named by `CANOPY_TEST_PG_URL`), with a settable
//! clock and a bootstrapped admin. [`backend_tests!`] runs each test on both
//! backends.
//!
//! Without `CANOPY_TEST_PG_URL` the PostgreSQL variants skip with a message,
//! except in CI (`CI=true`), where a missing PostgreSQL fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed set-up is a failed test

pub mod browser;
pub mod plans;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use canopy_domain::checkpoint::HistoryKey;
use canopy_domain::clock::Clock;
use canopy_engine::replication::{Adapters, Pass, ReplicationConfig, Replicator};
use canopy_server::{AppState, ServerConfig};
use canopy_store::Store;
use serde_json::Value;
use sqlx::{Connection, Executor};
use time::{Duration, OffsetDateTime};

pub use reqwest::StatusCode;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The instant every test starts at.
pub const START: OffsetDateTime = time::macros::datetime!(2026-11-23 10:00 UTC);

/// The password of the bootstrapped `admin` account.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A clock that tests set and move.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(t: OffsetDateTime) -> Self {
        Self(Mutex::new(t))
    }
    pub fn set(&self, t: OffsetDateTime) {
        *self.0.lock().unwrap() = t;
    }
    pub fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// A running application over its own database.
pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub db_url: String,
    pub admin_token: String,
    /// The key that encrypts platform secrets in this app's database.
    pub secret_key: canopy_store::SecretKey,
    /// The key that signs this app's history checkpoints (a fresh one per app).
    pub history_key: HistoryKey,
    /// The replication engine, not running on its own: tests drive it with
    /// [`TestApp::replicate`] and the settable clock.
    pub replicator: Arc<Replicator>,
    client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

/// An HTTP answer with its body parsed as JSON (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The field names a problem's `errors` list.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Assert the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {:#}", self.body);
        self
    }

    /// Assert a problem+json answer with this status naming `field`.
    #[track_caller]
    pub fn expect_problem(self, status: u16, field: Option<&str>) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {:#}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "body: {:#}", self.body);
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)));
        if let Some(f) = field {
            assert!(
                self.error_fields().iter().any(|e| e == f),
                "expected an error naming {f:?}; body: {:#}",
                self.body
            );
        }
        self
    }
}

/// Whether PostgreSQL is required (in CI) rather than optional.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh database URL for `backend`, or `None` to skip (PostgreSQL missing outside CI).
pub async fn fresh_database(backend: Backend) -> Option<(String, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("canopy.db").display());
            Some((url, Some(dir)))
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("CANOPY_TEST_PG_URL") else {
                if in_ci() {
                    panic!("CANOPY_TEST_PG_URL is not set: PostgreSQL is required in CI (run scripts/test)");
                }
                eprintln!("skipping the PostgreSQL variant: CANOPY_TEST_PG_URL is not set (scripts/test sets it)");
                return None;
            };
            let name = format!("canopy_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at CANOPY_TEST_PG_URL: {e}"));
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
            conn.close().await.unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            Some((format!("{base}/{name}"), None))
        }
    }
}

/// The first column (text) of every row `query` returns on the database at `db_url`.
pub async fn sql_strings(db_url: &str, query: &str) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db_url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_owned())).fetch_all(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    rows.iter().map(|r| r.try_get::<String, _>(0).unwrap()).collect()
}

/// A new random key for signing history checkpoints.
pub fn new_history_key() -> HistoryKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    HistoryKey::from_bytes(seed)
}

/// Start the application on a fresh database of `backend`. `None` means the
/// test is skipped (PostgreSQL not available outside CI).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// The OpenID Connect provider that `scripts/oidc` started
/// (CANOPY_TEST_OIDC_ISSUER, ..._CLIENT_ID, ..._CLIENT_SECRET); `None`
/// outside CI without one.
pub fn oidc_provider() -> Option<canopy_server::oidc::OidcSettings> {
    let [issuer, client_id, client_secret] = component(
        ["CANOPY_TEST_OIDC_ISSUER", "CANOPY_TEST_OIDC_CLIENT_ID", "CANOPY_TEST_OIDC_CLIENT_SECRET"],
        "OpenID Connect provider",
    )?;
    Some(canopy_server::oidc::OidcSettings { issuer, client_id, client_secret, display_name: "Test SSO".into() })
}

/// [`spawn_app`] with its configuration changed by `configure`; with an
/// identity provider (`oidc`) its public URL is the address it listens on,
/// so the provider sends people back there.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServerConfig)) -> Option<TestApp> {
    // before the server's first connection (see `plans::install`)
    plans::install();
    let (db_url, dir) = fresh_database(backend).await?;
    let store = Store::connect(&db_url).await.unwrap();
    let clock = Arc::new(ManualClock::new(START));
    canopy_server::bootstrap(&store, START, Some(ADMIN_PASSWORD.into())).await.unwrap();
    let secret_key = canopy_store::SecretKey::generate().unwrap();
    let history_key = new_history_key();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig {
        session_ttl: time::Duration::hours(12),
        session_idle: time::Duration::minutes(30),
        public_url: None,
        secret_key: secret_key.clone(),
        trusted_proxies: vec![],
        history_key: history_key.clone(),
        metrics_token: None,
        oidc: None,
        local_sign_in: Default::default(),
    };
    configure(&mut config);
    if config.oidc.is_some() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let replication = ReplicationConfig { node: "test-node".into(), ..ReplicationConfig::default() };
    let replicator =
        Arc::new(Replicator::new(store.clone(), clock.clone(), secret_key.clone(), Adapters::default(), replication));
    // this app's own registry: parallel tests each read their own metrics
    let mut registry = prometheus_client::registry::Registry::default();
    replicator.metrics().register(&mut registry);
    let state = AppState::new(store.clone(), clock.clone(), config, replicator.clone()).with_registry(registry);
    tokio::spawn(async move {
        let limits = canopy_server::listen::ListenLimits::default();
        canopy_server::listen::serve(listener, canopy_server::router(state), limits, std::future::pending())
            .await
            .unwrap();
    });
    let mut app = TestApp {
        backend,
        addr,
        base: format!("http://{addr}"),
        clock,
        store,
        db_url,
        admin_token: String::new(),
        secret_key,
        history_key,
        replicator,
        client: {
            let _ = rustls::crypto::ring::default_provider().install_default();
            // the server closes a connection idle for its header timeout:
            // never reuse one that old
            reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(5)).build().unwrap()
        },
        _dir: dir,
    };
    app.admin_token = app.sign_in("admin", ADMIN_PASSWORD).await;
    Some(app)
}

/// The Keystone that `scripts/keystone` started (CANOPY_TEST_KEYSTONE_URL,
/// CANOPY_TEST_KEYSTONE_PASSWORD); `None` outside CI without one.
pub fn keystone() -> Option<(String, String)> {
    let [url, password] = component(["CANOPY_TEST_KEYSTONE_URL", "CANOPY_TEST_KEYSTONE_PASSWORD"], "Keystone")?;
    Some((url, password))
}

/// The values of the `CANOPY_TEST_*` variables that name a real component
/// (`scripts/test` starts each and sets them). Outside CI a test skips
/// (`None`) when one is missing, saying why; in CI that is a failure.
pub fn component<const N: usize>(vars: [&str; N], what: &str) -> Option<[String; N]> {
    let values: Option<Vec<String>> = vars.iter().map(|v| std::env::var(v).ok()).collect();
    match values {
        Some(values) => values.try_into().ok(),
        None if in_ci() => panic!("{} is not set: {what} is required in CI (scripts/test starts it)", vars.join(", ")),
        None => {
            eprintln!("skipping: no {what} ({} not set; scripts/test starts one)", vars.join(", "));
            None
        }
    }
}

impl TestApp {
    /// Run the replication engine until no dirty tenant is due now.
    pub async fn replicate(&self) -> Pass {
        self.replicator.run_until_idle().await.unwrap()
    }

    /// Send a request; `token` goes in `Authorization: Bearer`.
    pub async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.request_with(method, path, token, body, &[]).await
    }

    /// Send a request with headers of its own (`If-Match`, ...).
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.unwrap();
        Self::read(res).await
    }

    /// Send a request from another loopback address (`127.0.0.2` ...), as a
    /// different client would: the server sees that peer address.
    pub async fn request_from(
        &self,
        from: std::net::IpAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let client = reqwest::Client::builder().local_address(from).build().unwrap();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Send a raw body with a content type (for malformed-input tests).
    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.unwrap()).await
    }

    async fn read(res: reqwest::Response) -> Resp {
        let status = res.status();
        let headers = res.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, content_type, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request("GET", path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request("POST", path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request("PATCH", path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.request("DELETE", path, Some(token), None).await
    }

    /// Sign in and return the session token.
    pub async fn sign_in(&self, username: &str, password: &str) -> String {
        let r = self
            .request(
                "POST",
                "/api/v1/auth/token",
                None,
                Some(serde_json::json!({"username": username, "password": password})),
            )
            .await
            .expect(200);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Create a local user `username` (e-mail `username@example.org`,
    /// password `password-of-USERNAME`) as admin, and sign them in.
    pub async fn user(&self, username: &str) -> String {
        self.post(
            "/api/v1/users",
            &self.admin_token,
            serde_json::json!({
                "username": username, "email": format!("{username}@example.org"),
                "first_name": capitalise(username), "last_name": "Tester",
                "password": format!("password-of-{username}")
            }),
        )
        .await
        .expect(201);
        self.sign_in(username, &format!("password-of-{username}")).await
    }

    /// Create a workspace as `token`'s user (who becomes its owner).
    pub async fn workspace(&self, token: &str, identifier: &str) {
        self.post(
            "/api/v1/workspaces",
            token,
            serde_json::json!({"identifier": identifier, "display_name": format!("Workspace {identifier}")}),
        )
        .await
        .expect(201);
    }

    /// Add a user to a workspace with a role.
    pub async fn invite(&self, token: &str, ws: &str, username: &str, role: &str) {
        self.post(
            &format!("/api/v1/workspaces/{ws}/members"),
            token,
            serde_json::json!({"user": username, "role": role}),
        )
        .await
        .expect(201);
    }

    /// Create a project in a workspace.
    pub async fn project(&self, token: &str, ws: &str, identifier: &str) {
        self.post(
            &format!("/api/v1/workspaces/{ws}/projects"),
            token,
            serde_json::json!({"identifier": identifier, "display_name": format!("Project {identifier}")}),
        )
        .await
        .expect(201);
    }

    /// Run raw SQL on the test database (to tamper with it, as an attacker would).
    pub async fn sql(&self, statement: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db_url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(statement.to_owned())).await.unwrap();
        conn.close().await.unwrap();
    }

    /// The first column of every row `query` returns, as text.
    pub async fn sql_strings(&self, query: &str) -> Vec<String> {
        sql_strings(&self.db_url, query).await
    }

    /// Row counts of every table and the head of every history chain: equal
    /// snapshots mean nothing was written.
    pub async fn snapshot(&self) -> Vec<(String, i64)> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db_url).await.unwrap();
        let mut out = Vec::new();
        for table in [
            "users",
            "user_installation_roles",
            "sessions",
            "workspaces",
            "api_keys",
            "user_groups",
            "group_members",
            "workspace_members",
            "invitations",
            "projects",
            "project_roles",
            "bindings",
            "history_events",
            "platforms",
            "platform_role_mappings",
            "landing_zones",
            "tenants",
            "tenant_work",
            "tenant_assignments",
        ] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            out.push((table.to_owned(), row.try_get::<i64, _>("n").unwrap()));
        }
        let rows = sqlx::query("SELECT chain, last_seq FROM history_chains ORDER BY chain")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for r in rows {
            out.push((r.try_get::<String, _>("chain").unwrap(), r.try_get::<i64, _>("last_seq").unwrap()));
        }
        conn.close().await.unwrap();
        out
    }
}

/// The SMTP sink (maildev) that `scripts/test` starts, named by
/// `CANOPY_TEST_SMTP_URL` and `CANOPY_TEST_MAILDEV_URL`.
pub struct MailSink {
    pub smtp_url: String,
    pub api_url: String,
}

/// The SMTP sink, or `None` to skip (not configured, outside CI).
pub fn mail_sink() -> Option<MailSink> {
    match (std::env::var("CANOPY_TEST_SMTP_URL"), std::env::var("CANOPY_TEST_MAILDEV_URL")) {
        (Ok(smtp_url), Ok(api_url)) => Some(MailSink { smtp_url, api_url }),
        _ if in_ci() => {
            panic!("CANOPY_TEST_SMTP_URL/CANOPY_TEST_MAILDEV_URL are not set: the SMTP sink is required in CI")
        }
        _ => {
            eprintln!("skipping: no SMTP sink (CANOPY_TEST_SMTP_URL is not set; scripts/test starts maildev)");
            None
        }
    }
}

impl MailSink {
    /// The messages the sink received for `address` (maildev's JSON objects:
    /// `subject`, `text`, `to`, `from`, ...). The sink is shared by parallel
    /// tests, so each test uses its own addresses.
    pub async fn messages_to(&self, address: &str) -> Vec<Value> {
        let all: Value = reqwest::get(format!("{}/api/email", self.api_url)).await.unwrap().json().await.unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"].as_array().is_some_and(|to| to.iter().any(|t| t["address"] == address)))
            .cloned()
            .collect()
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Run each listed `async fn NAME(app: TestApp)` on SQLite and on PostgreSQL,
/// as `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::spawn_app($crate::Backend::Sqlite).await {
                        super::$name(app).await
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::spawn_app($crate::Backend::Postgres).await {
                        super::$name(app).await
                    }
                }
            )*
        }
    };
}
