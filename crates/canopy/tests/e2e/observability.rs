//! Issue 13, part 6: `GET /metrics`, OpenTelemetry traces over OTLP, and
//! the configuration file of `canopy serve` (IF1), through the public
//! surface: HTTP and the `canopy` binary.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_testkit::TestApp;
use serde_json::json;
use time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::serve::{canopy, start};
use crate::tenants::unique;

/// One HTTP request a [`tiny_http`] server received.
#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server on loopback that answers every request with
/// `status` and an empty body, and hands each request it read to the channel.
async fn tiny_http(status: &'static str) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // the head, then as much body as Content-Length says
                let head_end = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    assert!(buf.len() < 1 << 20, "request head too long");
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut first = head.lines().next().unwrap_or("").split_whitespace();
                let method = first.next().unwrap_or("").to_owned();
                let path = first.next().unwrap_or("").to_owned();
                // handed over before the answer: whoever waits for the answer finds it
                let _ = tx.send(Received { method, path, body: buf[head_end..].to_vec() });
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (addr, rx)
}

/// An HTTP client (reqwest is built without a default TLS provider).
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The samples of a Prometheus text exposition: `name{labels}` to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (series.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {l}")))
        })
        .collect()
}

/// Scrape `GET /metrics` of an app: its samples and its text.
async fn scrape(app: &TestApp) -> (BTreeMap<String, f64>, String) {
    let res = http().get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = res.text().await.unwrap();
    (samples(&text), text)
}

#[track_caller]
fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no sample {series} in:\n{samples:#?}"))
}

async fn count_sql(app: &TestApp, query: &str) -> f64 {
    app.sql_strings(query).await[0].parse().unwrap()
}

/// IF1: one scrape tells an operator how requests went (by route template,
/// never by raw path), how far replication and the outbox are behind (read
/// from the database at scrape time), how platform calls fail by platform
/// type, and how many sign-ins failed or were throttled.
async fn if1_metrics_endpoint_reports_requests_replication_and_sign_ins(app: TestApp) {
    // a Keystone that is down: every call is answered 503 (retryable)
    let (keystone, _calls) = tiny_http("503 Service Unavailable").await;
    let platform = unique("os");
    let body = json!({"identifier": platform, "type": "openstack",
        "settings": {"auth_url": format!("http://{keystone}/v3"), "domain": "Default"},
        "secrets": {"username": "admin", "password": "secret-of-keystone"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &app.admin_token, body).await.expect(201);
    let ws = unique("w");
    app.workspace(&app.admin_token, &ws).await;
    app.project(&app.admin_token, &ws, "web").await;
    // a dirty tenant, and a mail waiting (a person is told of access added)
    let tenants = format!("/api/v1/workspaces/{ws}/projects/web/tenants");
    app.post(&tenants, &app.admin_token, json!({"platform": platform})).await.expect(201);
    app.user("ann").await;
    app.invite(&app.admin_token, &ws, "ann", "workspace_member").await;
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    app.post(&bindings, &app.admin_token, json!({"user": "ann", "role": "project_user"})).await.expect(201);
    let mails = count_sql(&app, "SELECT CAST(COUNT(*) AS TEXT) FROM outbox_mails WHERE sent_at IS NULL").await;
    assert!(mails >= 1.0, "adding access queues a mail");
    // failed sign-ins until throttling locks the name at this address
    let mut failed = 0.0;
    loop {
        let r = app
            .request("POST", "/api/v1/auth/token", None, Some(json!({"username": "mallory", "password": "guess"})))
            .await;
        match r.status.as_u16() {
            401 => failed += 1.0,
            429 => break,
            other => panic!("unexpected sign-in answer {other}"),
        }
        assert!(failed < 50.0, "sign-in was never throttled");
    }
    app.request("GET", &format!("/api/v1/no-such-route/{ws}"), None, None).await.expect(404);
    app.clock.advance(Duration::seconds(90));

    let (m, text) = scrape(&app).await;
    // requests by route template, method and status
    let signins =
        r#"canopy_http_request_duration_seconds_count{route="/api/v1/auth/token",method="POST",status="401"}"#;
    assert_eq!(sample(&m, signins), failed);
    let added = r#"canopy_http_request_duration_seconds_count{route="/api/v1/workspaces/{ws}/projects/{project}/tenants",method="POST",status="201"}"#;
    assert_eq!(sample(&m, added), 1.0);
    let unmatched = r#"canopy_http_request_duration_seconds_count{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(sample(&m, unmatched), 1.0);
    assert!(!text.contains(&ws) && !text.contains("mallory"), "no raw path or name is a label:\n{text}");
    // sign-ins
    assert_eq!(sample(&m, "canopy_sign_in_failures_total"), failed);
    assert_eq!(sample(&m, r#"canopy_sign_ins_throttled_total{reason="locked"}"#), 1.0);
    // replication: the tenant waits since it was added, 90 s ago
    assert_eq!(sample(&m, "canopy_replication_queue_depth"), 1.0);
    assert_eq!(sample(&m, "canopy_replication_oldest_waiting_age_seconds"), 90.0);
    assert_eq!(sample(&m, "canopy_replication_tenants_leased"), 0.0);
    assert_eq!(sample(&m, "canopy_replication_runs_in_flight"), 0.0);
    // the outbox: the mail waits since the member was added
    assert_eq!(sample(&m, "canopy_outbox_mails_waiting"), mails);
    assert_eq!(sample(&m, "canopy_outbox_oldest_mail_age_seconds"), 90.0);
    // SQLite's single writer: its COMMITs and the transactions they
    // committed (every change above was one); PostgreSQL has no such writer
    if app.db_url.starts_with("sqlite:") {
        let commits = sample(&m, "canopy_sqlite_commits_total");
        let committed = sample(&m, "canopy_sqlite_transactions_committed_total");
        assert!(commits >= 1.0 && commits <= committed, "{commits} commits of {committed} transactions");
        // and how long they held the writer: its busy time
        let held = sample(&m, "canopy_sqlite_writer_held_seconds_total");
        assert!(held > 0.0 && held < 60.0, "the writer held for {held} s");
    } else {
        assert!(!text.contains("canopy_sqlite_commits"), "{text}");
        assert!(!text.contains("canopy_sqlite_writer_held"), "{text}");
    }

    // another node leases the tenant: it is leased, no longer waiting
    let now = app.clock.now();
    let claims = app.store.claim_tenants("another-node", now, now + Duration::minutes(10), 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    let (m, _) = scrape(&app).await;
    assert_eq!(sample(&m, "canopy_replication_tenants_leased"), 1.0);
    assert_eq!(sample(&m, "canopy_replication_queue_depth"), 0.0);
    assert_eq!(sample(&m, "canopy_replication_oldest_waiting_age_seconds"), 0.0);
    app.store.release_tenant(&claims[0]).await.unwrap();

    // this node's run calls Keystone, which fails retryably: counted by
    // platform type, operation and outcome, and the tenant waits on
    let pass = app.replicate().await;
    assert_eq!((pass.tenants, pass.failed), (1, 1));
    let (m, _) = scrape(&app).await;
    let labels = r#"{platform_type="openstack",operation="ensure_tenant",outcome="retryable"}"#;
    assert_eq!(sample(&m, &format!("canopy_platform_call_errors_total{labels}")), 1.0);
    assert_eq!(sample(&m, &format!("canopy_platform_call_duration_seconds_count{labels}")), 1.0);
    assert_eq!(sample(&m, "canopy_replication_runs_in_flight"), 0.0);
    assert_eq!(sample(&m, "canopy_replication_queue_depth"), 1.0);
    assert_eq!(sample(&m, "canopy_replication_oldest_waiting_age_seconds"), 90.0);
    assert_eq!(sample(&m, "canopy_replication_tenants_leased"), 0.0);
}

canopy_testkit::backend_tests! {
    if1_metrics_endpoint_reports_requests_replication_and_sign_ins,
}

/// Write `text` as a configuration file readable by its owner only.
fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("canopy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// IF1: the file fills in what neither a flag nor the environment gives: a
/// flag beats the environment and the file, the environment beats the
/// file, and the file beats the defaults (here the database, the metrics
/// token and the session length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if1_config_file_values_apply_under_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-file.db");
    let file = config_file(
        &dir,
        &format!(
            "# a flag and the environment override the first two\n\
             listen = \"127.0.0.1:1\"\n\
             session_minutes = 5\n\
             database = \"sqlite://{}\"\n\
             metrics_token = \"token-from-the-file-0123\"\n\
             shutdown_grace_seconds = 1\n",
            db.display()
        ),
    );
    let mut cmd = canopy();
    cmd.env("CANOPY_CONFIG", &file)
        .env("CANOPY_SESSION_MINUTES", "7")
        .env("CANOPY_ADMIN_PASSWORD", "admin-password-from-env")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut child, addr, printed) = start(cmd).await;
    assert!(!addr.ends_with(":1"), "the flag's address, not the file's: {addr}\n{printed}");
    assert!(db.exists(), "the database the file names");
    let client = http();
    let signed_in: serde_json::Value = client
        .post(format!("http://{addr}/api/v1/auth/token"))
        .json(&json!({"username": "admin", "password": "admin-password-from-env"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expires = time::OffsetDateTime::parse(
        signed_in["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let minutes = (expires - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!((6..=7).contains(&minutes), "sessions last the environment's 7 minutes, not the file's 5: {minutes}");
    // the file's metrics token guards /metrics
    let open = client.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 401);
    let wrong = client.get(format!("http://{addr}/metrics")).bearer_auth("token-not-this-one-0123").send().await;
    assert_eq!(wrong.unwrap().status(), 401);
    let ok = client.get(format!("http://{addr}/metrics")).bearer_auth("token-from-the-file-0123").send().await;
    let ok = ok.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("canopy_replication_queue_depth 0"));
    child.kill().await.unwrap();
}

/// IF1: `--print-config` prints the effective configuration as TOML (each
/// value's source in a comment, secrets as "***") and exits 0 without
/// opening the database, here one that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if1_print_config_shows_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        "database = \"postgres://canopy:db-password-42@127.0.0.1:1/nowhere\"\n\
         smtp_url = \"smtps://mailer:smtp-password-42@mail.example.org:465\"\n\
         checkpoint_webhook = \"https://hooks.example.org/secret-path-42\"\n\
         metrics_token = \"metrics-token-secret-42\"\n\
         trusted_proxies = [\"10.0.0.1\", \"10.0.0.2\"]\n\
         session_minutes = 5\n\
         replication_workers = 3\n",
    );
    let out = canopy()
        .env("CANOPY_SESSION_MINUTES", "9")
        .env("CANOPY_ADMIN_PASSWORD", "admin-password-42")
        .args(["serve", "--config", &file, "--replication-workers", "4", "--print-config"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for secret in
        ["db-password-42", "smtp-password-42", "secret-path-42", "metrics-token-secret-42", "admin-password-42"]
    {
        assert!(!stdout.contains(secret), "{secret} is printed:\n{stdout}");
    }
    // where each value came from
    for line in [
        r#"database = "postgres://canopy:***@127.0.0.1:1/nowhere" # file"#,
        r#"smtp_url = "smtps://mailer:***@mail.example.org:465" # file"#,
        r#"checkpoint_webhook = "***" # file"#,
        r#"metrics_token = "***" # file"#,
        r#"trusted_proxies = ["10.0.0.1", "10.0.0.2"] # file"#,
        "session_minutes = 9 # environment",
        "replication_workers = 4 # flag",
        "max_connections = 1024 # default",
        "# admin_password (environment only, CANOPY_ADMIN_PASSWORD): \"***\"",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?} in:\n{stdout}");
    }
    // it is TOML that --config reads back (without its redacted secrets)
    let table: toml::Table = stdout.parse().unwrap();
    assert_eq!(table["session_minutes"].as_integer(), Some(9));
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:8080"));
}

/// IF1: a file with an unknown key, a value its flag would refuse, a
/// setting that comes from the environment only, or no TOML at all is
/// refused with a message naming the key and the file, and a failure exit;
/// nothing is started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if1_config_file_unknown_keys_and_bad_values_are_refused_naming_them() {
    for (text, says) in [
        ("listen = \"127.0.0.1:0\"\nsesion_minutes = 5\n", "unknown key `sesion_minutes`"),
        ("replication_workers = 0\n", "`replication_workers`: invalid value '0'"),
        ("listen = \"not an address\"\n", "`listen`: invalid value 'not an address'"),
        ("trusted_proxies = \"10.0.0.1\"\n", "`trusted_proxies` must be a list"),
        ("otlp_endpoint = \"ftp://collector\"\n", "`otlp_endpoint`: invalid value"),
        ("secret_key = \"AAAA\"\n", "`secret_key` cannot be set in a file"),
        ("session_minutes = [5]\n", "`session_minutes` takes one value"),
        ("listen = \n", "not valid TOML"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = config_file(&dir, text);
        let out = canopy().args(["serve", "--config", &file]).stdin(Stdio::null()).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(
            stderr.contains(&file) && stderr.contains(says),
            "{text:?}: expected {says:?} and {file} in:\n{stderr}"
        );
    }
    // a file that is not there
    let out = canopy().args(["serve", "--config", "/nonexistent/canopy.toml"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/canopy.toml"));
}

/// IF1: with `--otlp-endpoint`, `canopy serve` exports the spans of the
/// requests it serves as OpenTelemetry traces (OTLP/HTTP, protobuf) under
/// the service name `canopy`, and flushes them when it stops. The
/// collector is a tiny HTTP server of the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if1_otlp_exports_request_spans_when_configured() {
    let (collector, mut received) = tiny_http("200 OK").await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("canopy.db").display());
    let mut cmd = canopy();
    cmd.env("CANOPY_ADMIN_PASSWORD", "admin-password-for-otlp").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
        "--shutdown-grace-seconds",
        "1",
        "--otlp-endpoint",
        &format!("http://{collector}"),
    ]);
    let (mut child, addr, _) = start(cmd).await;
    let ok = http().get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // SIGTERM: a stopping node exports what it still holds
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = tokio::time::timeout(StdDuration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut bodies = Vec::new();
    while let Ok(r) = received.try_recv() {
        bodies.push(r);
    }
    assert!(!bodies.is_empty(), "nothing was exported");
    let found = bodies.iter().find(|r| {
        let b = String::from_utf8_lossy(&r.body);
        b.contains("/healthz")
    });
    let r = found.unwrap_or_else(|| panic!("no export holds the request's span: {bodies:?}"));
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("canopy"), "the service name is in the export");
    assert!(body.contains("GET /healthz"), "the span is named after the route");
}
