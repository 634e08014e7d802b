//! B4: the REST API of a real `canopy serve` under load, beside OpenStack
//! Keystone doing the same work in the same run.
//!
//! Set-up: one workspace of `users` members, `projects` projects of
//! `per_project` bindings each, and one project of `big` bindings, written
//! through the store with their history events (as every change is). Then,
//! each phase for `seconds`:
//!
//! 1. saturation, one operation at a time, `connections` requests in flight:
//!    the authenticated small list (`GET /api/v1/project-roles`, the
//!    baseline every read is compared with), a project's bindings page (a
//!    `per_project` project and the `big` one), a person's access
//!    (`GET /api/v1/me` of a member bound in ten projects), the owner's
//!    `/me` (who manages the whole workspace), the workspace's current
//!    access, a history page, and binding writes (add, change, remove);
//! 2. the mixed load, 80 % reads and 20 % writes, at a fixed rate
//!    (`rate` requests per second, latency counted from when each request
//!    was due, so a stalled server cannot hide its queue) and at saturation.
//!
//! With `--keystone-url`, the same kinds of operation run against Keystone:
//! `GET /v3/roles` (baseline), a project's role assignments, a user's role
//! assignments, and granting and revoking a role on a project. Each figure
//! is printed with its ratio to Canopy's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_domain::events::MemberAdded;
use canopy_domain::{SubjectKind, WorkspaceRole};
use canopy_store::{SecretKey, Store};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::signin::{ADMIN_PASSWORD, cpu_time, start_server};
use crate::{Setup, add_projects, base, bench};

/// The password the bench gives the accounts it signs in as.
pub(crate) const PASSWORD: &str = "canopy-bench-user-password";

/// What `canopy-bench b4` was asked for.
#[derive(clap::Args)]
pub struct Options {
    /// The `canopy` binary to start.
    #[arg(long, default_value = "target/release/canopy")]
    pub canopy_bin: PathBuf,
    /// Members of the workspace.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Projects of PER_PROJECT bindings.
    #[arg(long, default_value_t = 1_000)]
    pub projects: usize,
    #[arg(long, default_value_t = 100)]
    pub per_project: usize,
    /// Bindings of the one big project.
    #[arg(long, default_value_t = 10_000)]
    pub big: usize,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Requests in flight at saturation.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests per second of the fixed-rate mixed phase.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Keystone's identity URL (`scripts/keystone start DIR` prints it and the password).
    #[arg(long, requires = "keystone_password")]
    pub keystone_url: Option<String>,
    /// The password of Keystone's `admin` user.
    #[arg(long)]
    pub keystone_password: Option<String>,
    /// Role assignments Keystone holds on its project before the load.
    #[arg(long, default_value_t = 100)]
    pub keystone_assignments: usize,
    /// Measure only these operations, each alone at saturation, in this
    /// order (a name may repeat), and no mixed phase; `change` and `remove`
    /// work on bindings `add` made before them. Default: all, then the mixes.
    #[arg(long, value_delimiter = ',')]
    pub ops: Vec<String>,
}

/// B4's operations, in the order the whole bench measures them.
const OPS: [&str; 10] = [
    "baseline",
    "page",
    "page_big",
    "person_access",
    "owner_me",
    "current_access",
    "history",
    "add",
    "change",
    "remove",
];

/// A small deterministic generator (xorshift64*): the bench needs spread,
/// not secrecy, and the same run twice asks the same things.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Latencies of one operation, in microseconds, and its failures.
#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
    failed: u64,
    /// The first failure's status and body, to say why.
    first_failure: Option<String>,
}

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<BTreeMap<&'static str, Samples>>>);

impl Recorder {
    fn record(&self, op: &'static str, took: Duration, failure: Option<String>) {
        let Ok(mut all) = self.0.lock() else { return };
        let s = all.entry(op).or_default();
        match failure {
            None => s.micros.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
            Some(why) => {
                s.failed += 1;
                s.first_failure.get_or_insert(why);
            }
        }
    }

    fn take(&self) -> BTreeMap<&'static str, Samples> {
        self.0.lock().map(|mut all| std::mem::take(&mut *all)).unwrap_or_default()
    }
}

/// One figure: requests per second, p50 and p99 in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Figure {
    rate: f64,
    p50: f64,
    p99: f64,
    n: usize,
    failed: u64,
}

fn figure(s: &mut Samples, seconds: f64) -> Figure {
    s.micros.sort_unstable();
    let at = |q: f64| -> f64 {
        if s.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((s.micros.len() as f64 - 1.0) * q).round() as usize;
        s.micros[i.min(s.micros.len() - 1)] as f64 / 1000.0
    };
    Figure { rate: s.micros.len() as f64 / seconds, p50: at(0.5), p99: at(0.99), n: s.micros.len(), failed: s.failed }
}

fn print_figures(
    title: &str,
    seconds: f64,
    mut samples: BTreeMap<&'static str, Samples>,
) -> BTreeMap<&'static str, Figure> {
    println!("{title}");
    println!("  {:<16} {:>9} {:>9} {:>9} {:>8} {:>7}", "operation", "req/s", "p50 ms", "p99 ms", "n", "failed");
    let mut out = BTreeMap::new();
    for (op, s) in samples.iter_mut() {
        let f = figure(s, seconds);
        println!("  {op:<16} {:>9.0} {:>9.2} {:>9.2} {:>8} {:>7}", f.rate, f.p50, f.p99, f.n, f.failed);
        if let Some(why) = &s.first_failure {
            println!("    first failure: {why}");
        }
        out.insert(*op, f);
    }
    out
}

/// One request to make: method, path, body, and the token it is made with.
struct Call {
    op: &'static str,
    method: reqwest::Method,
    url: String,
    token: Arc<str>,
    body: Option<Value>,
    /// Keystone takes its token in `X-Auth-Token`.
    keystone: bool,
}

/// Make a call; the answer's body when it succeeded, else why not. The
/// body is read whole but not parsed: a load generator that parsed every
/// page would spend on the shared cores what the server is measured on, and
/// only the operations that use an answer ([`Workload::answered`]) parse it.
async fn send(client: &reqwest::Client, call: &Call) -> Result<bytes::Bytes, String> {
    let mut req = client.request(call.method.clone(), &call.url);
    req = if call.keystone { req.header("X-Auth-Token", &*call.token) } else { req.bearer_auth(&*call.token) };
    if let Some(b) = &call.body {
        req = req.json(b);
    }
    let resp = req.send().await.map_err(|e| format!("{} {}: {e}", call.method, call.url))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("{} {}: {e}", call.method, call.url))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("{} {} answered {status}: {text}", call.method, call.url));
    }
    Ok(body)
}

/// What the load asks for next; writes remember the bindings they made so
/// that changes and removals have something to change.
trait Workload: Send + Sync + 'static {
    /// The next call of the mix (`op` none), or of operation `op`.
    fn next(&self, rng: &mut Rng, op: Option<&'static str>) -> Call;
    /// A call answered with `body`: remember what it made.
    fn answered(&self, call: &Call, body: &[u8]);
}

/// Run calls for `seconds`: closed loop with `connections` in flight
/// (`rate` none), or open loop at `rate` per second.
async fn run_phase(
    client: &reqwest::Client,
    load: Arc<dyn Workload>,
    op: Option<&'static str>,
    seconds: u64,
    connections: usize,
    rate: Option<u64>,
) -> (BTreeMap<&'static str, Samples>, f64) {
    let rec = Recorder::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = JoinSet::new();
    match rate {
        None => {
            for w in 0..connections {
                let (client, load, rec) = (client.clone(), load.clone(), rec.clone());
                tasks.spawn(async move {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
                    while Instant::now() < until {
                        let call = load.next(&mut rng, op);
                        let t = Instant::now();
                        let answer = send(&client, &call).await;
                        match answer {
                            Ok(body) => {
                                rec.record(call.op, t.elapsed(), None);
                                load.answered(&call, &body);
                            }
                            Err(why) => rec.record(call.op, t.elapsed(), Some(why)),
                        }
                    }
                });
            }
        }
        Some(rate) => {
            let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            // more in flight than this is a server that fell behind: count it
            let in_flight = Arc::new(tokio::sync::Semaphore::new(connections.max(1) * 32));
            let mut rng = Rng(0xD1B5_4A32_D192_ED03);
            let mut due = started;
            while due < until {
                tokio::time::sleep_until(due.into()).await;
                let call = load.next(&mut rng, op);
                let (client, load, rec) = (client.clone(), load.clone(), rec.clone());
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    rec.record(call.op, Duration::ZERO, Some("dropped: too many requests in flight".into()));
                    due += every;
                    continue;
                };
                let scheduled = due;
                tasks.spawn(async move {
                    let answer = send(&client, &call).await;
                    drop(permit);
                    match answer {
                        Ok(body) => {
                            rec.record(call.op, scheduled.elapsed(), None);
                            load.answered(&call, &body);
                        }
                        Err(why) => rec.record(call.op, scheduled.elapsed(), Some(why)),
                    }
                });
                due += every;
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    (rec.take(), started.elapsed().as_secs_f64())
}

/// Canopy's operations.
struct CanopyLoad {
    base: String,
    owner: Arc<str>,
    person: Arc<str>,
    projects: usize,
    users: usize,
    /// Bindings the load made, to change and remove: (project, id).
    made: Mutex<Vec<(usize, String)>>,
    changed: Mutex<Vec<(usize, String)>>,
    adds: AtomicU64,
}

const CANOPY_READS: [(&str, u32); 6] =
    [("page", 20), ("page_big", 10), ("person_access", 10), ("owner_me", 10), ("current_access", 15), ("history", 15)];
const WRITES: [(&str, u32); 3] = [("add", 8), ("change", 6), ("remove", 6)];

fn pick(rng: &mut Rng, mix: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut r = (rng.next() % u64::from(total.max(1))) as u32;
    for (op, w) in mix {
        if r < *w {
            return op;
        }
        r -= w;
    }
    mix[0].0
}

impl CanopyLoad {
    fn call(&self, op: &'static str, method: reqwest::Method, path: String, body: Option<Value>) -> Call {
        let token = if op == "person_access" { self.person.clone() } else { self.owner.clone() };
        Call { op, method, url: format!("{}{path}", self.base), token, body, keystone: false }
    }
}

impl Workload for CanopyLoad {
    fn next(&self, rng: &mut Rng, op: Option<&'static str>) -> Call {
        let op = op.unwrap_or_else(|| {
            let mix: Vec<(&'static str, u32)> = CANOPY_READS.iter().chain(WRITES.iter()).copied().collect();
            pick(rng, &mix)
        });
        let ws = "/api/v1/workspaces/bench";
        let get = reqwest::Method::GET;
        match op {
            "baseline" => self.call(op, get, "/api/v1/project-roles".into(), None),
            "page" => {
                self.call(op, get, format!("{ws}/projects/p-{}/bindings?limit=50", rng.below(self.projects)), None)
            }
            "page_big" => self.call(op, get, format!("{ws}/projects/big-0/bindings?limit=50"), None),
            "person_access" | "owner_me" => self.call(op, get, "/api/v1/me".into(), None),
            "current_access" => self.call(op, get, format!("{ws}/members?limit=50"), None),
            "history" => self.call(op, get, format!("{ws}/history?limit=50"), None),
            "change" | "remove" => {
                let from = if op == "change" { &self.made } else { &self.changed };
                let taken = from.lock().ok().and_then(|mut v| v.pop());
                match taken {
                    Some((p, id)) if op == "change" => self.call(
                        op,
                        reqwest::Method::PATCH,
                        format!("{ws}/projects/p-{p}/bindings/{id}"),
                        Some(json!({"role": "project_reader"})),
                    ),
                    Some((p, id)) => {
                        self.call(op, reqwest::Method::DELETE, format!("{ws}/projects/p-{p}/bindings/{id}"), None)
                    }
                    None => self.next(rng, Some("add")),
                }
            }
            _ => {
                // a user not bound yet with this role: every add names a fresh pair
                let n = self.adds.fetch_add(1, Ordering::Relaxed) as usize;
                let p = n % self.projects;
                let user = (n / self.projects + p * 7 + 5_000) % self.users;
                let mut call = self.call(
                    "add",
                    reqwest::Method::POST,
                    format!("{ws}/projects/p-{p}/bindings"),
                    Some(json!({"user": format!("user{user}"), "role": "project_user"})),
                );
                call.op = "add";
                call
            }
        }
    }

    fn answered(&self, call: &Call, body: &[u8]) {
        let project = |url: &str| -> Option<usize> {
            let rest = url.split("/projects/p-").nth(1)?;
            rest.split('/').next()?.parse().ok()
        };
        let (Some(p), list) = (
            project(&call.url),
            match call.op {
                "add" => Some(&self.made),
                "change" => Some(&self.changed),
                _ => None,
            },
        ) else {
            return;
        };
        let Some(list) = list else { return };
        let id = if call.op == "add" {
            serde_json::from_slice::<Value>(body).ok().and_then(|v| v["id"].as_str().map(str::to_owned))
        } else {
            call.url.rsplit('/').next().map(str::to_owned)
        };
        if let (Some(id), Ok(mut v)) = (id, list.lock()) {
            v.push((p, id));
        }
    }
}

/// Keystone's operations of the same kinds.
struct KeystoneLoad {
    base: String,
    token: Arc<str>,
    project: String,
    users: Vec<String>,
    /// The role the load grants and revokes, and the one the seed holds.
    role: String,
    granted: Mutex<Vec<String>>,
    next_user: AtomicU64,
}

const KEYSTONE_READS: [(&str, u32); 2] = [("page", 40), ("person_access", 40)];

impl Workload for KeystoneLoad {
    fn next(&self, rng: &mut Rng, op: Option<&'static str>) -> Call {
        let op = op.unwrap_or_else(|| {
            let mix: Vec<(&'static str, u32)> =
                KEYSTONE_READS.iter().copied().chain([("add", 10), ("remove", 10)]).collect();
            pick(rng, &mix)
        });
        let call = |op: &'static str, method: reqwest::Method, path: String| Call {
            op,
            method,
            url: format!("{}{path}", self.base),
            token: self.token.clone(),
            body: None,
            keystone: true,
        };
        let get = reqwest::Method::GET;
        match op {
            "baseline" => call(op, get, "/v3/roles".into()),
            "page" => call(op, get, format!("/v3/role_assignments?scope.project.id={}", self.project)),
            "person_access" => {
                call(op, get, format!("/v3/role_assignments?user.id={}", self.users[rng.below(self.users.len())]))
            }
            "remove" => match self.granted.lock().ok().and_then(|mut v| v.pop()) {
                Some(user) => call(
                    op,
                    reqwest::Method::DELETE,
                    format!("/v3/projects/{}/users/{user}/roles/{}", self.project, self.role),
                ),
                None => self.next(rng, Some("add")),
            },
            _ => {
                let n = self.next_user.fetch_add(1, Ordering::Relaxed) as usize;
                let user = &self.users[n % self.users.len()];
                call(
                    "add",
                    reqwest::Method::PUT,
                    format!("/v3/projects/{}/users/{user}/roles/{}", self.project, self.role),
                )
            }
        }
    }

    fn answered(&self, call: &Call, _body: &[u8]) {
        if call.op == "add"
            && let Some(user) = call.url.split("/users/").nth(1).and_then(|r| r.split('/').next())
            && let Ok(mut v) = self.granted.lock()
            && !v.iter().any(|u| u == user)
        {
            // a grant made again is one assignment, to be revoked once
            v.push(user.to_owned());
        }
    }
}

/// Make the users members of the workspace (with their events), the owner
/// its owner.
pub(crate) async fn add_members(store: &Store, s: &Setup, owner: uuid::Uuid) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    // `base` names its users user0, user1, ...
    for (c, chunk) in s.users.chunks(1_000).enumerate() {
        let mut tx = store.write().await?;
        for (i, u) in chunk.iter().enumerate() {
            tx.upsert_member(s.ws, SubjectKind::User, *u, WorkspaceRole::Member, "bench", now).await?;
            let name = format!("user:user{}", c * 1_000 + i);
            let added = MemberAdded { subject: name, role: "workspace_member".into(), emergency: false };
            tx.record(Some(s.ws), now, &bench(), added.into())?;
        }
        tx.commit().await?;
    }
    let mut tx = store.write().await?;
    tx.upsert_member(s.ws, SubjectKind::User, owner, WorkspaceRole::Owner, "bench", now).await?;
    let added = MemberAdded { subject: "user:owner".into(), role: "workspace_owner".into(), emergency: false };
    tx.record(Some(s.ws), now, &bench(), added.into())?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<Arc<str>> {
    let r = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    let token = body["token"].as_str().with_context(|| format!("signing in as {username}: {status} {body}"))?;
    Ok(token.into())
}

pub(crate) async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = client.request(method, &url).bearer_auth(token).json(&body).send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

/// Set Canopy up: the server on an empty database (it creates `admin`),
/// then the workspace written through the store beside it.
async fn set_up_canopy(
    opts: &Options,
    database: Option<String>,
    dir: &std::path::Path,
    client: &reqwest::Client,
) -> anyhow::Result<(tokio::process::Child, CanopyLoad)> {
    let database = database.unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let bin = std::fs::canonicalize(&opts.canopy_bin)
        .with_context(|| format!("{} (build it: cargo build --release -p canopy)", opts.canopy_bin.display()))?;
    let (child, addr) = start_server(&bin, dir, &database).await?;
    let base_url = format!("http://{addr}");
    let admin = sign_in(client, &base_url, "admin", ADMIN_PASSWORD).await?;
    let owner = api(
        client,
        reqwest::Method::POST,
        format!("{base_url}/api/v1/users"),
        &admin,
        json!({"username": "owner", "email": "owner@example.org", "first_name": "Olga", "last_name": "Owner", "password": PASSWORD}),
    )
    .await?;
    let owner_name = owner["username"].as_str().unwrap_or("owner").to_owned();

    let t = Instant::now();
    let store = Store::connect(&database).await.context("opening the database beside the server")?;
    let key = SecretKey::generate()?;
    let s = base(&store, &key, 0, opts.users).await?;
    let owner_id = store
        .read()
        .await?
        .user_by_username(&owner_name)
        .await?
        .map(|u| u.id)
        .context("the owner account is missing")?;
    add_members(&store, &s, owner_id).await?;
    add_projects(&store, &s, "p", opts.projects, opts.per_project, None).await?;
    add_projects(&store, &s, "big", 1, opts.big, None).await?;
    store.refresh_statistics().await?;
    println!(
        "B4 set-up: {} members, {} projects × {} bindings and one of {} ({} bindings) in {:.1} s",
        opts.users,
        opts.projects,
        opts.per_project,
        opts.big,
        opts.projects * opts.per_project + opts.big,
        t.elapsed().as_secs_f64()
    );
    drop(store);
    // a member bound in ten projects signs in for "a person's access"
    api(
        client,
        reqwest::Method::PATCH,
        format!("{base_url}/api/v1/users/user5"),
        &admin,
        json!({"password": PASSWORD}),
    )
    .await?;
    let person = sign_in(client, &base_url, "user5", PASSWORD).await?;
    let owner = sign_in(client, &base_url, &owner_name, PASSWORD).await?;
    let load = CanopyLoad {
        base: base_url,
        owner,
        person,
        projects: opts.projects,
        users: opts.users,
        made: Mutex::default(),
        changed: Mutex::default(),
        adds: AtomicU64::new(0),
    };
    Ok((child, load))
}

/// Set Keystone up: a project, `n` users, each granted `member` on it.
async fn set_up_keystone(
    client: &reqwest::Client,
    url: &str,
    password: &str,
    n: usize,
) -> anyhow::Result<KeystoneLoad> {
    let base = url.trim_end_matches('/').trim_end_matches("/v3").to_owned();
    let auth = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
    }});
    let r = client.post(format!("{base}/v3/auth/tokens")).json(&auth).send().await?;
    let token: Arc<str> = r
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .context("Keystone gave no token: is --keystone-password right?")?
        .into();
    let ks = |method: reqwest::Method, path: String, body: Value| {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        async move {
            let mut req = client.request(method, format!("{base}{path}")).header("X-Auth-Token", &*token);
            // Keystone refuses a body on a request that takes none
            if !body.is_null() {
                req = req.json(&body);
            }
            let r = req.send().await?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("Keystone {path} answered {status}: {body}");
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let project = ks(
        reqwest::Method::POST,
        "/v3/projects".into(),
        json!({"project": {"name": format!("bench-{tag}"), "domain_id": "default"}}),
    )
    .await?;
    let project = project["project"]["id"].as_str().context("Keystone made no project")?.to_owned();
    let roles = ks(reqwest::Method::GET, "/v3/roles".into(), Value::Null).await?;
    let role_id = |name: &str| -> Option<String> {
        roles["roles"].as_array()?.iter().find(|r| r["name"] == name).and_then(|r| r["id"].as_str()).map(str::to_owned)
    };
    let member = role_id("member").context("Keystone has no member role")?;
    let reader = role_id("reader").context("Keystone has no reader role")?;
    let t = Instant::now();
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let u = ks(
            reqwest::Method::POST,
            "/v3/users".into(),
            json!({"user": {"name": format!("bench-{tag}-{i}"), "domain_id": "default"}}),
        )
        .await?;
        let id = u["user"]["id"].as_str().context("Keystone made no user")?.to_owned();
        ks(reqwest::Method::PUT, format!("/v3/projects/{project}/users/{id}/roles/{member}"), Value::Null).await?;
        users.push(id);
    }
    println!("B4 Keystone set-up: {n} users with a role on one project in {:.1} s", t.elapsed().as_secs_f64());
    Ok(KeystoneLoad {
        base,
        token,
        project,
        users,
        role: reader,
        granted: Mutex::default(),
        next_user: AtomicU64::new(0),
    })
}

/// Wait (at most five minutes) until the system answers a small-list call:
/// a phase that overwhelmed it (the fixed rate against Keystone) leaves
/// requests queued at the server after the generator gave up on them, and
/// they would count against the next phase. A server answers in order,
/// so once this call is answered the queue before it is worked off.
async fn drain(client: &reqwest::Client, load: &Arc<dyn Workload>) {
    let until = Instant::now() + Duration::from_secs(300);
    let mut rng = Rng(1);
    while Instant::now() < until {
        if send(client, &load.next(&mut rng, Some("baseline"))).await.is_ok() {
            return;
        }
    }
}

/// The figures of every phase against one system, by phase and operation,
/// and where the system's process is known, the CPU time it and the load
/// generator spent per request in each phase.
#[derive(Default)]
struct Phases {
    figures: BTreeMap<String, BTreeMap<&'static str, Figure>>,
    cpu: BTreeMap<String, CpuPerRequest>,
    /// The system's `/metrics`, where it has SQLite's group-commit counters.
    metrics: Option<String>,
}

/// SQLite's single writer so far, from Canopy's `/metrics`: its COMMITs,
/// the write transactions they committed and the seconds it was held
/// (`None` on PostgreSQL, or if the metrics are not open).
async fn sqlite_commits(client: &reqwest::Client, url: &str) -> Option<(u64, u64, f64)> {
    let text = client.get(url).send().await.ok()?.error_for_status().ok()?.text().await.ok()?;
    let counter =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
    Some((
        counter("canopy_sqlite_commits_total")? as u64,
        counter("canopy_sqlite_transactions_committed_total")? as u64,
        counter("canopy_sqlite_writer_held_seconds_total")?,
    ))
}

/// CPU time per request over one phase, in microseconds: the server's
/// process and this one (the load generator), which share the cores.
#[derive(Debug, Clone, Copy)]
struct CpuPerRequest {
    server: f64,
    generator: f64,
}

impl Phases {
    /// Run one phase, recording its figures (and CPU) under `key`.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        key: String,
        title: impl FnOnce(f64) -> String,
        client: &reqwest::Client,
        load: Arc<dyn Workload>,
        op: Option<&'static str>,
        opts: &Options,
        rate: Option<u64>,
        server: Option<u32>,
    ) {
        let me = std::process::id();
        let commits_before = match &self.metrics {
            Some(url) => sqlite_commits(client, url).await,
            None => None,
        };
        let before = server.and_then(cpu_time).zip(cpu_time(me));
        let (samples, secs) = run_phase(client, load, op, opts.seconds, opts.connections, rate).await;
        let after = server.and_then(cpu_time).zip(cpu_time(me));
        let n: usize = samples.values().map(|s| s.micros.len()).sum();
        let figures = print_figures(&title(secs), secs, samples);
        let commits_after = match &self.metrics {
            Some(url) => sqlite_commits(client, url).await,
            None => None,
        };
        if let (Some((c0, t0, h0)), Some((c1, t1, h1))) = (commits_before, commits_after)
            && c1 > c0
        {
            let (commits, transactions) = (c1 - c0, t1.saturating_sub(t0));
            println!(
                "  SQLite's writer: {commits} COMMITs for {transactions} write transactions ({:.1} a COMMIT), \
                 held {:.0} % of the phase",
                transactions as f64 / commits as f64,
                (h1 - h0).max(0.0) / secs * 100.0
            );
        }
        if let (Some((s0, g0)), Some((s1, g1)), true) = (before, after, n > 0) {
            let per = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() * 1e6 / n as f64;
            let cpu = CpuPerRequest { server: per(s0, s1), generator: per(g0, g1) };
            println!(
                "  CPU a request: server {:.0} µs, load generator {:.0} µs (cores busy: {:.2})",
                cpu.server,
                cpu.generator,
                (cpu.server + cpu.generator) * n as f64 / 1e6 / secs
            );
            self.cpu.insert(key.clone(), cpu);
        }
        self.figures.insert(key, figures);
    }
}

/// Every phase against one system (`server`: its process, whose CPU time
/// is read from `/proc`).
async fn phases(
    name: &str,
    client: &reqwest::Client,
    load: Arc<dyn Workload>,
    ops: &[&'static str],
    opts: &Options,
    server: Option<u32>,
    metrics: Option<String>,
) -> Phases {
    let mut out = Phases { metrics, ..Phases::default() };
    let n = opts.connections;
    for op in ops {
        let title = |secs: f64| format!("{name}, saturation, {op} only ({n} in flight, {secs:.1} s)");
        out.run(format!("saturation {op}"), title, client, load.clone(), Some(op), opts, None, server).await;
    }
    if !opts.ops.is_empty() {
        return out;
    }
    let title = |secs: f64| format!("{name}, mixed 80/20 at {} req/s ({secs:.1} s)", opts.rate);
    out.run("fixed".into(), title, client, load.clone(), None, opts, Some(opts.rate), server).await;
    drain(client, &load).await;
    let title = |secs: f64| format!("{name}, mixed 80/20 at saturation ({n} in flight, {secs:.1} s)");
    out.run("mixed".into(), title, client, load, None, opts, None, server).await;
    out
}

fn rate_of(phases: &Phases, op: &'static str) -> Option<f64> {
    phases.figures.get(&format!("saturation {op}"))?.get(op).map(|f| f.rate)
}

fn server_cpu_of(phases: &Phases, op: &'static str) -> Option<f64> {
    phases.cpu.get(&format!("saturation {op}")).map(|c| c.server)
}

/// Run B4 on `database` (an empty one; `None`: a fresh SQLite file).
pub async fn run(opts: Options, database: Option<String>) -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider (the workspace picks ring)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.connections.max(1) * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let ops = if opts.ops.is_empty() {
        OPS.to_vec()
    } else {
        let known = |o: &String| OPS.iter().find(|k| **k == o.as_str()).copied();
        opts.ops
            .iter()
            .map(|o| known(o).with_context(|| format!("--ops: no operation {o:?} (B4 has {})", OPS.join(", "))))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let (mut child, canopy) = set_up_canopy(&opts, database, dir.path(), &client).await?;
    let canopy = Arc::new(canopy);
    let metrics = Some(format!("{}/metrics", canopy.base));
    let c = phases("Canopy", &client, canopy.clone(), &ops, &opts, child.id(), metrics).await;
    let _ = child.kill().await;

    let baseline = rate_of(&c, "baseline").unwrap_or(f64::NAN);
    println!("Targets (issue 13), from the saturation runs:");
    for (op, share) in [
        ("page", 0.5),
        ("page_big", 0.5),
        ("current_access", 0.5),
        ("history", 0.5),
        ("add", 0.2),
        ("change", 0.2),
        ("remove", 0.2),
    ] {
        let Some(r) = rate_of(&c, op) else { continue };
        let cpu = match (server_cpu_of(&c, op), server_cpu_of(&c, "baseline")) {
            (Some(a), Some(b)) => format!("; the server's CPU a request {a:.0} µs = {:.2} × the small list's", a / b),
            _ => String::new(),
        };
        println!("  {op:<16} {r:>8.0} req/s = {:.2} × the small list (target ≥ {share}){cpu}", r / baseline);
    }
    if let (Some(small), Some(big)) = (rate_of(&c, "page"), rate_of(&c, "page_big")) {
        println!(
            "  a {}-binding project's page takes {:.2} × the time of a {}-binding one's (target ≤ 1.25)",
            opts.big,
            small / big,
            opts.per_project
        );
    }
    if let Some(f) = c.figures.get("fixed") {
        let worst = f.values().map(|f| f.p99).fold(0.0, f64::max);
        println!("  mixed at {} req/s: worst p99 {worst:.2} ms (target ≤ 20 ms)", opts.rate);
    }

    if let (Some(url), Some(password)) = (&opts.keystone_url, &opts.keystone_password) {
        let ks = Arc::new(set_up_keystone(&client, url, password, opts.keystone_assignments).await?);
        let k =
            phases("Keystone", &client, ks, &["baseline", "page", "person_access", "add", "remove"], &opts, None, None)
                .await;
        println!("Canopy ÷ Keystone (saturation, req/s):");
        // a peer that answered nothing has no ratio (Keystone still working
        // off a phase that overwhelmed it, say), not an enormous one
        let ratio =
            |a: f64, b: f64| if b > 0.0 { format!("{:.1}", a / b) } else { "none: Keystone answered nothing".into() };
        for op in ["baseline", "page", "person_access", "add", "remove"] {
            if let (Some(a), Some(b)) = (rate_of(&c, op), rate_of(&k, op)) {
                println!("  {op:<16} {a:>8.0} ÷ {b:>8.1} = {}", ratio(a, b));
            }
        }
        if let (Some(a), Some(b)) = (c.figures.get("mixed"), k.figures.get("mixed")) {
            let total = |m: &BTreeMap<&'static str, Figure>| m.values().map(|f| f.rate).sum::<f64>();
            println!("  mixed 80/20      {:>8.0} ÷ {:>8.1} = {}", total(a), total(b), ratio(total(a), total(b)));
        }
    }
    Ok(())
}
