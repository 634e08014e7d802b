//! Replication across real `canopy serve` processes against a real Keystone:
//! two nodes sharing one PostgreSQL, and a node killed with SIGKILL at random
//! moments. These run the system clock: they wait for real work to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canopy_platforms::{Platform, TenantRef};
use canopy_testkit::{Backend, fresh_database, sql_strings};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy"));
    for var in ["CANOPY_LISTEN", "CANOPY_DATABASE_URL", "CANOPY_SERVER", "CANOPY_TOKEN", "CANOPY_PROFILE"] {
        cmd.env_remove(var);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", db, "--node-name", name])
        .args(["--replication-lease-seconds", "3", "--replication-workers", "8"])
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
