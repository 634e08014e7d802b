//! Replication across real `canopy serve` processes against a real Keystone:
//! two nodes sharing one PostgreSQL, a node killed with SIGKILL at random
//! moments, and a node stopped with SIGTERM that hands its tenants back.
//! These run the system clock: they wait for real work to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canopy_platforms::{Platform, TenantRef};
use canopy_testkit::{Backend, fresh_database, sql_strings};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::tenants::{Os, unique};

const PASSWORD: &str = "admin-password-of-the-nodes";
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// A running `canopy serve` and what it printed.
struct Node {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

async fn start(db: &str, name: &str) -> Node {
    start_with(db, name, &["--replication-lease-seconds", "3"]).await
}

/// [`start`] with more flags.
async fn start_with(db: &str, name: &str, flags: &[&str]) -> Node {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    for var in ["CANOPY_LISTEN", "CANOPY_DATABASE_URL", "CANOPY_SERVER", "CANOPY_TOKEN", "CANOPY_PROFILE"] {
        cmd.env_remove(var);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", db, "--node-name", name])
        .args(["--replication-workers", "8"])
        .args(flags)
        .env("CANOPY_ADMIN_PASSWORD", PASSWORD)
        .env("CANOPY_SECRET_KEY", KEY)
        .env("CANOPY_HISTORY_KEY", KEY)
        .env("CANOPY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some((_, rest)) = line.split_once("address=") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("canopy serve exited before serving:\n{}", log.lock().unwrap());
    })
    .await
    .unwrap();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    Node { child, addr, log }
}

/// A small REST client signed in as the admin.
struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn new(addr: &str) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("http://{addr}/api/v1/auth/token"))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api { http, token: r["token"].as_str().unwrap().to_owned() }
    }

    async fn post(&self, addr: &str, path: &str, body: Value) -> Value {
        let r =
            self.http.post(format!("http://{addr}{path}")).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    async fn get(&self, addr: &str, path: &str) -> Value {
        let r = self.http.get(format!("http://{addr}{path}")).bearer_auth(&self.token).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "GET {path}: {status} {v}");
        v
    }
}

async fn count(db: &str, query: &str) -> i64 {
    sql_strings(db, &format!("SELECT CAST(({query}) AS TEXT)")).await[0].parse().unwrap()
}

/// Wait until no tenant is dirty and every tenant succeeded.
async fn converged(db: &str, tenants: i64, limit: Duration, nodes: &[&Node]) {
    let started = std::time::Instant::now();
    loop {
        let done = count(db, "SELECT COUNT(*) FROM tenants WHERE status = 'succeeded'").await;
        let dirty = count(db, "SELECT COUNT(*) FROM tenant_work").await;
        if done == tenants && dirty == 0 {
            return;
        }
        if started.elapsed() > limit {
            for n in nodes {
                eprintln!("--- node log ---\n{}", n.log.lock().unwrap());
            }
            panic!("not converged after {limit:?}: {done}/{tenants} succeeded, {dirty} dirty");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A random number below `n` (no test RNG crate: a v4 UUID is random).
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

/// How many Keystone objects of a kind carry a name (duplicates show as more than one).
pub async fn keystone_count(os: &Os, kind: &str, name: &str) -> usize {
    let (status, body) = os.call(reqwest::Method::GET, &format!("/{kind}?name={name}"), None).await;
    assert_eq!(status, 200, "{body}");
    body[kind].as_array().unwrap().len()
}

/// Item 7 of the replication issue: two nodes on one PostgreSQL share 300
/// dirty tenants; each tenant is applied exactly once, by one node, and
/// exactly one node runs the scheduler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tn4_two_nodes_share_300_tenants_and_apply_each_once() {
    let Some(os) = Os::get() else { return };
    let Some((db, _dir)) = fresh_database(Backend::Postgres).await else { return };
    let a = start(&db, "node-a").await;
    let b = start(&db, "node-b").await;
    let api = Api::new(&a.addr).await;
    let ws = unique("w");
    let user = unique("u");
    let platform = unique("os");
    let addrs = [a.addr.clone(), b.addr.clone()];
    api.post(&a.addr, "/api/v1/users", json!({"username": user, "email": format!("{user}@example.org")})).await;
    api.post(&a.addr, "/api/v1/workspaces", json!({"identifier": ws, "display_name": "Nodes"})).await;
    api.post(&a.addr, &format!("/api/v1/workspaces/{ws}/members"), json!({"user": user, "role": "workspace_member"}))
        .await;
    api.post(&a.addr, "/api/v1/platforms", os.platform(&platform, "Default")).await;
    let n: usize = std::env::var("CANOPY_TEST_NODES_TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    for i in 0..n {
        // the API is stateless: requests go to either node
        let addr = &addrs[i % 2];
        let project = format!("p{i}");
        api.post(
            addr,
            &format!("/api/v1/workspaces/{ws}/projects"),
            json!({"identifier": project, "display_name": project}),
        )
        .await;
        let p = format!("/api/v1/workspaces/{ws}/projects/{project}");
        api.post(addr, &format!("{p}/bindings"), json!({"user": user, "role": "project_user"})).await;
        api.post(addr, &format!("{p}/tenants"), json!({"platform": platform})).await;
    }
    converged(&db, n as i64, Duration::from_secs(600), &[&a, &b]).await;

    let details = sql_strings(&db, "SELECT details FROM history_events WHERE kind = 'tenant_replicated'").await;
    let mut per_project: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in details {
        let d: Value = serde_json::from_str(&d).unwrap();
        per_project.entry(d["project"].as_str().unwrap().to_owned()).or_default().push(d);
    }
    assert_eq!(per_project.len(), n, "every tenant was replicated");
    let mut nodes = BTreeSet::new();
    for (project, runs) in &per_project {
        assert_eq!(runs.len(), 1, "{project} was applied more than once: {runs:?}");
        assert_eq!(runs[0]["granted"], json!([{"account": user, "platform_role": "member"}]), "{project}");
        nodes.insert(runs[0]["node"].as_str().unwrap().to_owned());
    }
    assert_eq!(nodes, BTreeSet::from(["node-a".to_owned(), "node-b".to_owned()]), "both nodes shared the work");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tenant_assignments WHERE applied_at IS NOT NULL").await, n as i64);
    let leaders = [&a, &b].iter().filter(|n| n.log.lock().unwrap().contains("this node runs the scheduler")).count();
    assert_eq!(leaders, 1, "exactly one node runs the scheduler");
    drop((a.child, b.child));
}

/// Item 8 of the replication issue: a node killed with SIGKILL at random
/// moments, 10 times, while it replicates 200 assignments; after the last
/// restart every tenant holds exactly the desired assignments on Keystone,
/// and no account or project was made twice.
async fn tn4_replication_survives_sigkill_at_random_moments(backend: Backend) {
    let Some(os) = Os::get() else { return };
    let Some((db, _dir)) = fresh_database(backend).await else { return };
    let mut node = start(&db, "killed").await;
    let api = Api::new(&node.addr).await;
    let ws = unique("w");
    let platform = unique("os");
    let users: Vec<String> = (0..10).map(|_| unique("u")).collect();
    let addr = node.addr.clone();
    api.post(&addr, "/api/v1/workspaces", json!({"identifier": ws, "display_name": "Killed"})).await;
    api.post(&addr, "/api/v1/platforms", os.platform(&platform, "Default")).await;
    for u in &users {
        api.post(&addr, "/api/v1/users", json!({"username": u, "email": format!("{u}@example.org")})).await;
        api.post(&addr, &format!("/api/v1/workspaces/{ws}/members"), json!({"user": u, "role": "workspace_member"}))
            .await;
    }
    const PROJECTS: usize = 20;
    for i in 0..PROJECTS {
        let project = format!("p{i}");
        api.post(
            &addr,
            &format!("/api/v1/workspaces/{ws}/projects"),
            json!({"identifier": project, "display_name": project}),
        )
        .await;
        let p = format!("/api/v1/workspaces/{ws}/projects/{project}");
        api.post(&addr, &format!("{p}/tenants"), json!({"platform": platform})).await;
        for u in &users {
            api.post(&addr, &format!("{p}/bindings"), json!({"user": u, "role": "project_user"})).await;
        }
    }
    // 20 tenants x 10 people = 200 assignments, replicating while the node dies again and again
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200 + random_below(1500))).await;
        node.child.start_kill().unwrap(); // SIGKILL
        node.child.wait().await.unwrap();
        node = start(&db, "killed").await;
    }
    converged(&db, PROJECTS as i64, Duration::from_secs(300), &[&node]).await;

    let tenants = sql_strings(&db, "SELECT external_id FROM tenants").await;
    assert_eq!(tenants.len(), PROJECTS);
    let want: BTreeSet<String> = users.iter().map(|u| format!("{u}:member")).collect();
    let ks = Os::get().unwrap().client();
    for ext in &tenants {
        let held: BTreeSet<String> = ks
            .observe(&TenantRef { external_id: ext.clone() }, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|h| format!("{}:{}", h.username, h.platform_role))
            .collect();
        assert_eq!(held, want, "tenant {ext} holds exactly the desired assignments");
    }
    for u in &users {
        assert_eq!(keystone_count(&os, "users", u).await, 1, "account {u} exists once");
    }
    for name in sql_strings(&db, "SELECT name FROM tenants").await {
        assert_eq!(keystone_count(&os, "projects", &name).await, 1, "project {name} exists once");
    }
    drop(node.child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tn4_replication_survives_sigkill_at_random_moments_sqlite() {
    tn4_replication_survives_sigkill_at_random_moments(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tn4_replication_survives_sigkill_at_random_moments_postgres() {
    tn4_replication_survives_sigkill_at_random_moments(Backend::Postgres).await
}

/// AC7: a binding whose expiration passed while Canopy was stopped is ended
/// when it starts again (the real `canopy serve`, on the system clock; the
/// expiration is moved into the past in the database while it is down).
async fn ac7_binding_expired_while_canopy_was_stopped_is_ended_on_start(backend: Backend) {
    let Some((db, _dir)) = fresh_database(backend).await else { return };
    let mut node = start(&db, "expiry").await;
    let api = Api::new(&node.addr).await;
    let addr = node.addr.clone();
    let ws = unique("w");
    api.post(&addr, "/api/v1/workspaces", json!({"identifier": ws, "display_name": "Expiry"})).await;
    api.post(&addr, &format!("/api/v1/workspaces/{ws}/projects"), json!({"identifier": "web", "display_name": "Web"}))
        .await;
    api.post(&addr, "/api/v1/users", json!({"username": "ann", "email": "ann@example.org"})).await;
    api.post(&addr, &format!("/api/v1/workspaces/{ws}/members"), json!({"user": "ann", "role": "workspace_member"}))
        .await;
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let bindings = format!("/api/v1/workspaces/{ws}/projects/web/bindings");
    api.post(&addr, &bindings, json!({"user": "ann", "role": "project_user", "expires_at": tomorrow})).await;
    node.child.start_kill().unwrap();
    node.child.wait().await.unwrap();

    // while it is down, the expiration passes
    let an_hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1)).unix_timestamp_nanos() / 1000;
    sql_strings(&db, &format!("UPDATE bindings SET expires_at = {an_hour_ago}")).await;
    let node = start(&db, "expiry").await;
    let api = Api::new(&node.addr).await;
    let history = format!("/api/v1/workspaces/{ws}/history?kind=binding_expired");
    let started = std::time::Instant::now();
    loop {
        let h = api.get(&node.addr, &history).await;
        if let Some(e) = h["items"].as_array().unwrap().first() {
            assert_eq!(
                (e["initiator"]["name"].as_str(), e["details"]["subject"].as_str()),
                (Some("expiry"), Some("user:ann"))
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ended 30 s after start:\n{}",
            node.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = api.get(&node.addr, &bindings).await;
    assert_eq!(list["items"][0]["in_force"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ac7_binding_expired_while_canopy_was_stopped_is_ended_on_start_sqlite() {
    ac7_binding_expired_while_canopy_was_stopped_is_ended_on_start(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ac7_binding_expired_while_canopy_was_stopped_is_ended_on_start_postgres() {
    ac7_binding_expired_while_canopy_was_stopped_is_ended_on_start(Backend::Postgres).await
}

/// A TCP proxy in front of the real Keystone that holds every chunk a client
/// sends for `delay_ms` milliseconds: a platform that answers slowly.
struct SlowProxy {
    /// Keystone's identity URL through the proxy.
    url: String,
    delay_ms: Arc<AtomicU64>,
}

async fn slow_proxy(keystone_url: &str) -> SlowProxy {
    let mut url = reqwest::Url::parse(keystone_url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    url.set_port(Some(listener.local_addr().unwrap().port())).unwrap();
    let delay_ms = Arc::new(AtomicU64::new(0));
    let delay = delay_ms.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, delay) = (target.clone(), delay.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        tokio::time::sleep(Duration::from_millis(delay.load(Ordering::Relaxed))).await;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    SlowProxy { url: url.as_str().trim_end_matches('/').to_owned(), delay_ms }
}

/// Issue 12, item 5: a node stopped with SIGTERM in the middle of a run on a
/// tenant it holds under a ten-minute lease exits 0 within its grace period
/// (and the platform call in progress), and hands the tenant back: a claim
/// takes it at once, and another node converges it, long before the lease
/// would have run out, each assignment made once across the two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tn4_a_stopped_node_hands_its_tenants_back_at_once() {
    let Some(os) = Os::get() else { return };
    let Some((db, _dir)) = fresh_database(Backend::Postgres).await else { return };
    let proxy = slow_proxy(&os.url).await;
    let slow = Os { url: proxy.url.clone(), password: os.password.clone() };
    const GRACE: u64 = 2;
    // what a run may still take after the grace period: the platform call in progress
    const CALL_WAIT: u64 = 5;
    let flags = ["--replication-lease-seconds", "600", "--shutdown-grace-seconds", "2"];
    let mut a = start_with(&db, "node-a", &flags).await;
    let api = Api::new(&a.addr).await;
    let ws = unique("w");
    let platform = unique("os");
    let users: Vec<String> = (0..16).map(|_| unique("u")).collect();
    let addr = a.addr.clone();
    api.post(&addr, "/api/v1/workspaces", json!({"identifier": ws, "display_name": "Stopped"})).await;
    api.post(&addr, "/api/v1/platforms", slow.platform(&platform, "Default")).await;
    api.post(&addr, &format!("/api/v1/workspaces/{ws}/projects"), json!({"identifier": "p", "display_name": "P"}))
        .await;
    let p = format!("/api/v1/workspaces/{ws}/projects/p");
    for u in &users {
        api.post(&addr, "/api/v1/users", json!({"username": u, "email": format!("{u}@example.org")})).await;
        api.post(&addr, &format!("/api/v1/workspaces/{ws}/members"), json!({"user": u, "role": "workspace_member"}))
            .await;
        api.post(&addr, &format!("{p}/bindings"), json!({"user": u, "role": "project_user"})).await;
    }
    // sixteen grants of three Keystone calls each, every call held 150 ms:
    // the run lasts well beyond the grace period, each grant well within the
    // wait for the call in progress
    proxy.delay_ms.store(150, Ordering::Relaxed);
    api.post(&addr, &format!("{p}/tenants"), json!({"platform": platform})).await;

    // node A holds the tenant and is making its grants
    let started = std::time::Instant::now();
    loop {
        let held = count(&db, "SELECT COUNT(*) FROM tenant_work WHERE leased_by LIKE 'node-a/%'").await;
        let intents = count(&db, "SELECT COUNT(*) FROM tenant_assignments").await;
        if held == 1 && intents > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "node A never got to its grants:\n{}",
            a.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = std::time::Instant::now();
    let pid = a.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = tokio::time::timeout(Duration::from_secs(GRACE + CALL_WAIT + 10), a.child.wait())
        .await
        .unwrap_or_else(|_| panic!("node A still runs after SIGTERM:\n{}", a.log.lock().unwrap()))
        .unwrap();
    let took = stopping.elapsed();
    // the log reader may still be taking in the last lines
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = a.log.lock().unwrap().clone();
    assert!(exit.success(), "node A exited with {exit:?}:\n{log}");
    assert!(took < Duration::from_secs(GRACE + CALL_WAIT), "node A took {took:?} to stop:\n{log}");
    assert!(log.contains("tenant handed back"), "{log}");

    // still dirty, held by nobody: taken at once rather than in ten minutes
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tenant_work WHERE leased_by IS NULL").await, 1, "{log}");
    let store = canopy_store::Store::connect(&db).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let claims = store.claim_tenants("probe", now, now + time::Duration::minutes(1), 10).await.unwrap();
    assert_eq!(claims.len(), 1, "the tenant is free at once:\n{log}");
    let leases: Vec<_> = claims.iter().map(|c| (c.tenant_id, c.token.clone())).collect();
    store.release_leases(&leases).await.unwrap();
    store.close().await;

    // another node finishes the work (the platform answers quickly again)
    proxy.delay_ms.store(0, Ordering::Relaxed);
    let b = start_with(&db, "node-b", &flags).await;
    converged(&db, 1, Duration::from_secs(120), &[&b]).await;
    assert!(stopping.elapsed() < Duration::from_secs(300), "long before the 600 s lease ran out");
    let ext = sql_strings(&db, "SELECT external_id FROM tenants").await.remove(0);
    let held: BTreeSet<String> = os
        .client()
        .observe(&TenantRef { external_id: ext }, &Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|h| format!("{}:{}", h.username, h.platform_role))
        .collect();
    let want: BTreeSet<String> = users.iter().map(|u| format!("{u}:member")).collect();
    assert_eq!(held, want);
    // each grant recorded once: node A's confirmed before it stopped, node B's the rest
    let mut granted: Vec<String> = Vec::new();
    let mut by = BTreeSet::new();
    for d in sql_strings(&db, "SELECT details FROM history_events WHERE kind = 'tenant_replicated'").await {
        let d: Value = serde_json::from_str(&d).unwrap();
        by.insert(d["node"].as_str().unwrap().to_owned());
        granted.extend(d["granted"].as_array().unwrap().iter().map(|g| g["account"].as_str().unwrap().to_owned()));
    }
    granted.sort();
    let mut everyone = users.clone();
    everyone.sort();
    assert_eq!(granted, everyone, "every grant recorded exactly once");
    assert!(by.contains("node-b"), "node B took the tenant up: {by:?}");
    drop(b.child);
}

/// PostgreSQL closing the server's connections (a restart, a fail-over, a
/// proxy's idle timeout) costs no request once they have sat idle: a pooled
/// connection idle for a second is tested before a request gets it, and a
/// dead one is replaced (without that test, each dead connection failed one
/// request with a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if1_requests_succeed_after_the_database_closed_every_connection() {
    let Some(app) = canopy_testkit::spawn_app(Backend::Postgres).await else { return };
    let token = app.admin_token.clone();
    let many = || futures::future::join_all((0..8).map(|_| app.get("/api/v1/workspaces", &token)));
    for r in many().await {
        r.expect(200);
    }
    let closed = count(
        &app.db_url,
        "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await;
    assert!(closed >= 2, "the server had {closed} connections open to close");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for r in many().await {
        r.expect(200);
    }
}
