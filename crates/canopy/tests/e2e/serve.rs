//! `canopy serve` and `canopy admin verify-history`, run as real processes.

use std::process::Stdio;
use std::time::Duration;

use canopy_testkit::{Backend, TestApp};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_canopy");

pub(crate) fn canopy() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "CANOPY_LISTEN",
        "CANOPY_DATABASE_URL",
        "CANOPY_ADMIN_PASSWORD",
        "CANOPY_SERVER",
        "CANOPY_TOKEN",
        "CANOPY_PROFILE",
        "CANOPY_HISTORY_KEY_FILE",
        "CANOPY_CHECKPOINT_FILE",
        "CANOPY_CHECKPOINT_WEBHOOK",
        "CANOPY_CONFIG",
        "CANOPY_METRICS_TOKEN",
        "CANOPY_OTLP_ENDPOINT",
    ] {
        c.env_remove(var);
    }
    // a fixed key, so that no test writes a key file into the working directory
    c.env("CANOPY_LOG", "info")
        .env("CANOPY_SECRET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .env("CANOPY_HISTORY_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .kill_on_drop(true);
    c
}

/// Start `canopy serve` and read its stderr until it serves; returns the
/// process, its address and everything it printed before.
pub(crate) async fn start(mut cmd: Command) -> (Child, String, String) {
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some((_, rest)) = line.split_once("address=") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("canopy serve exited before serving:\n{printed}");
    })
    .await
    .unwrap();
    // keep draining stderr so the server never blocks on a full pipe
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr, printed)
}

async fn sign_in(addr: &str, password: &str) -> reqwest::StatusCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/auth/token"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn if3_serve_on_an_empty_database_creates_admin_with_generated_password(app: TestApp) {
    let (url, _dir) = canopy_testkit::fresh_database(app.backend).await.unwrap();
    let mut cmd = canopy();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", &url]);
    let (mut child, addr, printed) = start(cmd).await;
    let password = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password printed:\n{printed}"))
        .to_owned();
    assert!(password.len() >= 20);
    assert_eq!(sign_in(&addr, &password).await, 200);
    assert_eq!(sign_in(&addr, "not-the-password").await, 401);
    child.kill().await.unwrap();

    // a second start on the same database prints no password and keeps the admin
    let mut cmd = canopy();
    cmd.env("CANOPY_DATABASE_URL", &url).env("CANOPY_LISTEN", "127.0.0.1:0");
    cmd.arg("serve");
    let (mut child, addr, printed) = start(cmd).await;
    assert!(!printed.contains("password:"), "{printed}");
    assert_eq!(sign_in(&addr, &password).await, 200);
    child.kill().await.unwrap();
}

async fn if3_serve_takes_admin_password_from_environment(app: TestApp) {
    let (url, _dir) = canopy_testkit::fresh_database(app.backend).await.unwrap();
    let mut cmd = canopy();
    cmd.env("CANOPY_ADMIN_PASSWORD", "a-password-from-env").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &url,
    ]);
    let (mut child, addr, printed) = start(cmd).await;
    assert!(!printed.contains("a-password-from-env"), "the password is never printed");
    assert_eq!(sign_in(&addr, "a-password-from-env").await, 200);
    child.kill().await.unwrap();
    // a password too short is refused with a clear message and a failure exit
    let (url, _dir2) = canopy_testkit::fresh_database(app.backend).await.unwrap();
    let out = canopy()
        .env("CANOPY_ADMIN_PASSWORD", "short")
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    // so is a database URL of an unknown kind
    let out = canopy().args(["serve", "--database", "mysql://x"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite://PATH or postgres://"));
}

async fn hi3_admin_verify_history_command_reports_the_first_broken_link(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    app.project(&ann, "ws", "web").await;
    let out = canopy().args(["admin", "verify-history", "--database", &app.db_url]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("every link intact"), "{stdout}");

    app.sql("UPDATE history_events SET initiator_name = 'mallory' WHERE seq = 2 AND chain = (SELECT id FROM workspaces WHERE identifier = 'ws')").await;
    let out = canopy()
        .env("CANOPY_DATABASE_URL", &app.db_url)
        .args(["admin", "verify-history", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_broken"]["chain"], "ws");
    assert_eq!(v["first_broken"]["seq"], 2);
}

/// SE7: `canopy admin verify-history --checkpoints` checks checkpoints kept
/// from earlier against the history key, on the database directly.
async fn se7_admin_verify_history_checks_checkpoints_with_the_history_key(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for p in ["a", "b", "c", "d"] {
        app.project(&ann, "ws", p).await;
    }
    let cps = app.get("/api/v1/admin/history/checkpoints", &app.admin_token).await.expect(200).body;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoints.json");
    std::fs::write(&file, cps.to_string()).unwrap();
    let key = dir.path().join("history.key");
    std::fs::write(&key, app.history_key.to_base64()).unwrap();
    let run = |extra: &[&str]| {
        let mut c = canopy();
        c.env_remove("CANOPY_HISTORY_KEY").args(["admin", "verify-history", "--database", &app.db_url]).args(extra);
        c
    };
    let (f, k) = (file.to_str().unwrap(), key.to_str().unwrap());
    let out = run(&["--checkpoints", f, "--history-key-file", k]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 checkpoints still contained"), "{stdout}");
    // the key from the environment instead, another installation's: refused
    let out = run(&["--checkpoints", f])
        .env("CANOPY_HISTORY_KEY", canopy_testkit::new_history_key().to_base64())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed by key"), "{}", String::from_utf8_lossy(&out.stdout));
    // no key at all
    let out = run(&["--checkpoints", f, "--history-key-file", "/nonexistent/history.key"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--history-key-file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the last three events of ws's chain cut off and its head moved back
    let chain = "(SELECT id FROM workspaces WHERE identifier = 'ws')";
    app.sql(&format!("DELETE FROM history_events WHERE chain = {chain} AND seq > 3")).await;
    app.sql(&format!(
        "UPDATE history_chains SET last_seq = 3, last_hash = \
         (SELECT hash FROM history_events WHERE chain = {chain} AND seq = 3) WHERE chain = {chain}"
    ))
    .await;
    let out = run(&[]).output().await.unwrap();
    assert!(out.status.success(), "without checkpoints the cut does not show");
    let out = run(&["--checkpoints", f, "--history-key-file", k]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("history is BROKEN in chain ws at event #6") && stdout.contains("removed from its end"),
        "{stdout}"
    );
    let out = run(&["--checkpoints", f, "--history-key-file", k, "--json"]).output().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"][0]["code"], "checkpoint_truncated");
    assert_eq!(v["checkpoints_checked"], 2);
    // a workspace's whole chain deleted shows without checkpoints
    app.sql(&format!("DELETE FROM history_events WHERE chain = {chain}")).await;
    app.sql(&format!("DELETE FROM history_chains WHERE chain = {chain}")).await;
    let out = run(&[]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("history is BROKEN in chain ws: workspace ws exists but its history chain is gone"),
        "{stdout}"
    );
}

/// SE7: `canopy serve` creates its history key beside the secret key (0600)
/// and exports checkpoints to --checkpoint-file at start, which `canopy admin
/// verify-history` proves with that key.
async fn se7_serve_creates_its_history_key_and_exports_checkpoints(app: TestApp) {
    if app.backend != Backend::Sqlite {
        return; // the key file and the export are the same on both
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let db = format!("sqlite://{}", dir.path().join("canopy.db").display());
    let export = dir.path().join("checkpoints.jsonl");
    let mut cmd = canopy();
    cmd.current_dir(dir.path())
        .env_remove("CANOPY_SECRET_KEY")
        .env_remove("CANOPY_HISTORY_KEY")
        .env("CANOPY_ADMIN_PASSWORD", "a-password-from-env")
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db, "--secret-key-file", "keys/canopy.key"])
        .args(["--checkpoint-file", export.to_str().unwrap(), "--checkpoint-every-minutes", "60"]);
    let (mut child, _, _) = start(cmd).await;
    let text = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(t) = std::fs::read_to_string(&export)
                && t.ends_with('\n')
            {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("checkpoints exported at start");
    child.kill().await.unwrap();
    let key_file = dir.path().join("keys").join("canopy-history.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let key = canopy_domain::checkpoint::HistoryKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let cp: canopy_domain::checkpoint::Checkpoint = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(cp.label, "installation");
    key.public_key().check_signature(&cp).unwrap();
    let out = canopy()
        .current_dir(dir.path())
        .env_remove("CANOPY_HISTORY_KEY")
        .args(["admin", "verify-history", "--database", &db, "--checkpoints", export.to_str().unwrap()])
        .args(["--history-key-file", "keys/canopy-history.key"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // a webhook that is no http(s) URL stops the start with a clear message
    let out = canopy()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db, "--checkpoint-webhook", "ftp://example.org/x"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--checkpoint-webhook"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn if3_serve_runs_on_the_default_sqlite_file_in_the_current_directory(app: TestApp) {
    if app.backend != Backend::Sqlite {
        return; // the default is SQLite by definition
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = canopy();
    cmd.current_dir(dir.path())
        .env_remove("CANOPY_SECRET_KEY")
        .env("CANOPY_ADMIN_PASSWORD", "a-password-from-env")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut child, addr, _) = start(cmd).await;
    assert_eq!(sign_in(&addr, "a-password-from-env").await, 200);
    child.kill().await.unwrap();
    // the database holds password hashes: readable by its owner only, its WAL too (issue 11, finding 12)
    for file in ["canopy.db", "canopy.db-wal"] {
        let meta = std::fs::metadata(dir.path().join(file)).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{file}");
    }
    // the key for platform secrets was created beside it, readable by its owner only
    let key = dir.path().join("canopy.key");
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(canopy_store::SecretKey::from_base64(&text).is_ok());
    // a second start reads the same key
    let mut cmd = canopy();
    cmd.current_dir(dir.path()).env_remove("CANOPY_SECRET_KEY").args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut child, _, _) = start(cmd).await;
    child.kill().await.unwrap();
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
}

/// Finding 10 of issue 11: a connection that never finished its headers
/// stayed open for ever (slowloris), and connections were unbounded.
async fn se5_slow_clients_are_cut_and_connections_bounded(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, _dir) = canopy_testkit::fresh_database(app.backend).await.unwrap();
    let mut cmd = canopy();
    cmd.env("CANOPY_ADMIN_PASSWORD", "a-password-from-env").args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        &url,
        "--header-timeout-seconds",
        "2",
        "--body-timeout-seconds",
        "2",
        "--max-connections",
        "2",
    ]);
    let (mut child, addr, _) = start(cmd).await;
    // Read until the server closes the connection; what it said before.
    async fn closed_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(limit, async {
            let mut buf = [0u8; 1024];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        read.await.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
    }
    // headers trickled in and never finished, and a connection that says nothing
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // both hold the only two slots: a third client waits
    let client = reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    assert!(client.get(format!("http://{addr}/healthz")).send().await.is_err(), "a third connection was served");
    // until the server cuts the slow ones
    let said = closed_within(&mut slow, Duration::from_secs(8)).await.expect("the slow connection was cut");
    assert!(said.is_empty() || said.starts_with("HTTP/1.1 408"), "{said}");
    closed_within(&mut silent, Duration::from_secs(8)).await.expect("the silent connection was cut");
    let r = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop((r, slow, silent));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // a body that trickles a byte at a time, never pausing long, is cut too
    // (408), and the server keeps serving
    let mut body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body.write_all(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if body.write_all(b" ").await.is_err() {
            break;
        }
    }
    let said = closed_within(&mut body, Duration::from_secs(8)).await.expect("the trickling body was cut");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("application/problem+json"), "{said}");
    assert_eq!(sign_in(&addr, "a-password-from-env").await, 200);
    child.kill().await.unwrap();
}

canopy_testkit::backend_tests! {
    se5_slow_clients_are_cut_and_connections_bounded,
    if3_serve_on_an_empty_database_creates_admin_with_generated_password,
    if3_serve_takes_admin_password_from_environment,
    hi3_admin_verify_history_command_reports_the_first_broken_link,
    if3_serve_runs_on_the_default_sqlite_file_in_the_current_directory,
    se7_admin_verify_history_checks_checkpoints_with_the_history_key,
    se7_serve_creates_its_history_key_and_exports_checkpoints,
}
