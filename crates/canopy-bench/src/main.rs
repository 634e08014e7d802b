//! Replication and sign-in benchmarks (`cargo run --release -p canopy-bench -- b1`).
//!
//! The engine runs as in `canopy serve` (`Replicator::run`) against a
//! simulated platform whose every call takes a fixed latency (50 ms by
//! default). Each figure is printed with its ratio to the physical limit
//! `calls × latency / concurrency`: 1.0 would be a perfect engine, and the
//! excess is what the engine and its database add.
//!
//! - B1: N bindings × 6 tenants per project replicated from scratch; and
//!   per platform type (`b1-cloud`, [`clouds`]) by the real adapter into the
//!   fakes of Azure, Google Cloud and Cloud Foundry under their published limits.
//! - B2: emergency revocation of one person across 1,000 tenants while B1's
//!   backlog runs: time to the first and the last revoke call.
//! - B3: a full reconcile with no drift over P projects × 20 bindings
//!   (platform writes must be 0), with CPU time and peak memory.
//! - B5: 1,000 bindings expiring at one instant: the expiry job ends them
//!   and replication revokes them; time to the first and the last revoke call.
//!
//! The database is a fresh SQLite file unless `--database` names another.
//!
//! One bench runs the real server instead ([`signin`]):
//!
//! - SE1 (`signin`): peak memory of a `canopy serve` process (the binary from
//!   `cargo build --release -p canopy`) under bursts of concurrent sign-ins,
//!   each checking a password with argon2id (19 MiB): the answers counted by
//!   status, and the peak's ratio to `cores × 19 MiB + the RSS before`.
//! - B4 (`b4`, [`rest`]): the REST API under load, beside Keystone.
//! - B6 (`b6`, [`b6`]): `canopy serve` at 100,000 and 1,000,000 bindings
//!   (start to `/readyz`, resident memory) and the engine's full reconcile
//!   at that size.
//! - `pages` ([`pages`]): the web UI's main pages with 10,000 bindings in one
//!   workspace, p50 and p99 per page.

mod b6;
mod clouds;
mod pages;
mod rest;
mod signin;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use canopy_domain::Subject;
use canopy_domain::clock::Clock;
use canopy_domain::events::{
    BindingChanged, BindingCreated, BindingTerms, HistoryChainCreated, PlatformCreated, PlatformTerms, ProjectCreated,
    ProjectRoleCreated, TenantCreated, UserCreated, UserDeactivated, WorkspaceCreated,
};
use canopy_domain::history::Initiator;
use canopy_domain::platforms::{DeletionMode, PlatformType};
use canopy_domain::replication::DriftPolicy;
use canopy_domain::roles::InstallationRole;
use canopy_engine::replication::{Connector, ReplicationConfig, Replicator};
use canopy_platforms::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use canopy_store::{NewBinding, NewPlatform, NewUser, PlatformRecord, SecretKey, Store, UserChanges};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
    /// Latency of every simulated platform call, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Tenants replicated at once.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Tenants of one platform replicated at once.
    #[arg(long, default_value_t = 16)]
    per_platform: usize,
    /// `sqlite://PATH` or `postgres://...` (default: a fresh SQLite file).
    #[arg(long)]
    database: Option<String>,
}

#[derive(Subcommand)]
enum Bench {
    /// B1: BINDINGS bindings (10 per project) × 6 tenants per project, replicated.
    B1 {
        #[arg(long, default_value_t = 10_000)]
        bindings: usize,
    },
    /// B2: emergency revocation of one person across TENANTS tenants while
    /// B1's backlog (BINDINGS bindings × 6 tenants) runs.
    B2 {
        #[arg(long, default_value_t = 1_000)]
        tenants: usize,
        #[arg(long, default_value_t = 10_000)]
        bindings: usize,
    },
    /// B3: a full reconcile with no drift over PROJECTS projects × 20 bindings.
    B3 {
        #[arg(long, default_value_t = 10_000)]
        projects: usize,
    },
    /// B5: BINDINGS bindings (one per project and tenant) expiring at one instant.
    B5 {
        #[arg(long, default_value_t = 1_000)]
        bindings: usize,
    },
    /// B1 per platform type: PROJECTS × PER_PROJECT bindings replicated by
    /// the real adapter into the platform's fake, which enforces the
    /// platform's published request limits (start it first: `scripts/azure|gcp|cf
    /// start DIR`, and export its lines as the tests' CANOPY_TEST_* variables).
    B1Cloud(clouds::Options),
    /// B4: the REST API of a real `canopy serve` under a mixed load, with
    /// OpenStack Keystone doing the same in the same run where given (build
    /// first: `cargo build --release -p canopy`). `--database` names an
    /// empty database (default: a fresh SQLite file).
    B4(rest::Options),
    /// B6: a real `canopy serve` at 100,000 and 1,000,000 bindings (start
    /// to /readyz, resident memory), and the engine's full reconcile at the
    /// largest size (build first: `cargo build --release -p canopy`).
    /// `--database` names an empty database (default: a fresh SQLite file).
    B6(b6::Options),
    /// The web UI's main pages on a real `canopy serve` holding one
    /// workspace of 10,000 bindings: p50 and p99 time per page, one request
    /// at a time (build first: `cargo build --release -p canopy`).
    Pages(pages::Options),
    /// SE1: peak memory of a real `canopy serve` under BURSTS bursts of BURST
    /// sign-ins at once (build it first: `cargo build --release -p canopy`).
    Signin {
        /// The `canopy` binary to start.
        #[arg(long, default_value = "target/release/canopy")]
        canopy_bin: PathBuf,
        /// Sign-ins at once in each burst.
        #[arg(long, default_value_t = 300)]
        burst: usize,
        /// Bursts, one after the other.
        #[arg(long, default_value_t = 3)]
        bursts: usize,
        /// Pause between bursts, in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        pause_ms: u64,
    },
}

/// Wait until `n` revoke calls matching `account` were made; their instants.
async fn revokes_made(sim: &Sim, account: Option<&str>, n: usize) -> Vec<Instant> {
    loop {
        let made = sim.revoked(account);
        if made.len() >= n {
            return made;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// The first and last of `calls` after `start`, in seconds.
fn first_last(start: Instant, calls: &[Instant]) -> (f64, f64) {
    let since = |t: &Instant| t.saturating_duration_since(start).as_secs_f64();
    let first = calls.iter().map(since).fold(f64::INFINITY, f64::min);
    let last = calls.iter().map(since).fold(0.0, f64::max);
    (first, last)
}

struct WallClock;
impl Clock for WallClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// What the simulated platforms hold: per tenant, (account, role) pairs
/// of interned names, so that a million assignments (B6) take little of
/// the bench's own memory.
#[derive(Default)]
struct Holdings {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    tenants: HashMap<String, BTreeSet<(u32, u32)>>,
}

impl Holdings {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    fn name(&self, id: u32) -> String {
        self.names.get(id as usize).cloned().unwrap_or_default()
    }

    fn pair(&mut self, account: &str, role: &str) -> (u32, u32) {
        (self.id(account), self.id(role))
    }

    fn held(&self, tenant: &str) -> BTreeSet<Held> {
        let Some(pairs) = self.tenants.get(tenant) else { return BTreeSet::new() };
        pairs.iter().map(|(u, r)| Held { username: self.name(*u), platform_role: self.name(*r) }).collect()
    }
}

/// Every simulated platform's state and counters.
#[derive(Default)]
struct Sim {
    latency_ms: AtomicU64,
    tenants: Mutex<Holdings>,
    calls: AtomicU64,
    writes: AtomicU64,
    /// Every revoke call: the account and when it was made.
    revokes: Mutex<Vec<(String, Instant)>>,
}

impl Sim {
    /// The tenant holds these accounts in this role (a set-up written as replicated).
    fn hold(&self, tenant: &str, accounts: &[String], role: &str) {
        let mut h = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let pairs: Vec<(u32, u32)> = accounts.iter().map(|a| h.pair(a, role)).collect();
        h.tenants.entry(tenant.to_owned()).or_default().extend(pairs);
    }

    /// When the revoke calls for `account` (any, when `None`) were made.
    fn revoked(&self, account: Option<&str>) -> Vec<Instant> {
        let revokes = self.revokes.lock().unwrap_or_else(|e| e.into_inner());
        revokes.iter().filter(|(a, _)| account.is_none_or(|x| x == a)).map(|(_, t)| *t).collect()
    }
}

struct SimPlatform {
    prefix: String,
    sim: Arc<Sim>,
}

impl SimPlatform {
    async fn call(&self, write: bool) {
        self.sim.calls.fetch_add(1, Ordering::Relaxed);
        if write {
            self.sim.writes.fetch_add(1, Ordering::Relaxed);
        }
        let ms = self.sim.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(StdDuration::from_millis(ms)).await;
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Holdings) -> T) -> T {
        f(&mut self.sim.tenants.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Platform for SimPlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        self.call(true).await;
        let id = format!("{}/{}", self.prefix, spec.name);
        self.with(|t| {
            t.tenants.entry(id.clone()).or_default();
        });
        Ok(TenantRef { external_id: id })
    }
    async fn observe(&self, tenant: &TenantRef, _scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        self.call(false).await;
        Ok(self.with(|t| t.held(&tenant.external_id)))
    }
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.call(true).await;
        self.with(|t| {
            let pair = t.pair(&user.username, role);
            t.tenants.entry(tenant.external_id.clone()).or_default().insert(pair);
        });
        Ok(())
    }
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        self.sim.revokes.lock().unwrap_or_else(|e| e.into_inner()).push((username.to_owned(), Instant::now()));
        self.call(true).await;
        self.with(|t| {
            let pair = t.pair(username, role);
            t.tenants.entry(tenant.external_id.clone()).or_default().remove(&pair);
        });
        Ok(())
    }
    async fn find_resources(&self, _tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        self.call(false).await;
        Ok(Vec::new())
    }
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        self.call(true).await;
        self.with(|t| {
            t.tenants.remove(&tenant.external_id);
        });
        Ok(())
    }
}

struct SimConnector(Arc<Sim>);

impl Connector for SimConnector {
    type Platform = SimPlatform;
    fn connect(&self, p: &PlatformRecord, _: &Map<String, Value>) -> Result<Arc<SimPlatform>, PlatformError> {
        Ok(Arc::new(SimPlatform { prefix: p.identifier.clone(), sim: self.0.clone() }))
    }
}

/// CPU time of this process so far (user + system), from /proc.
fn cpu_time() -> Option<StdDuration> {
    signin::cpu_time(std::process::id())
}

/// Peak resident memory of this process, from /proc.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What `base` made: a workspace, one project role, users and platforms.
struct Setup {
    ws: uuid::Uuid,
    role: uuid::Uuid,
    role_name: String,
    users: Vec<uuid::Uuid>,
    platforms: Vec<uuid::Uuid>,
}

/// Who the history names for what the bench sets up.
fn bench() -> Initiator {
    Initiator::system("bench")
}

/// Users, a workspace, and `platforms` platforms mapping one role; each with
/// its history event, as every change is.
async fn base(store: &Store, key: &SecretKey, platforms: usize, users_n: usize) -> anyhow::Result<Setup> {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await?;
    let role = tx.insert_project_role("bench_user", "Bench user", "", now).await?;
    let created = ProjectRoleCreated { role: role.identifier.clone(), display_name: role.display_name.clone() };
    tx.record(None, now, &bench(), created.into())?;
    let ws = tx.insert_workspace("bench", "Bench", now).await?;
    let created = WorkspaceCreated { workspace: ws.identifier.clone(), display_name: ws.display_name.clone() };
    tx.record(Some(ws.id), now, &bench(), created.into())?;
    let chain =
        HistoryChainCreated { workspace: ws.identifier.clone(), chain: ws.id.to_string(), recorded_later: false };
    tx.record(None, now, &bench(), chain.into())?;
    let no_roles = BTreeSet::<InstallationRole>::new();
    let mut users = Vec::new();
    for i in 0..users_n {
        let name = format!("user{i}");
        let email = format!("{name}@example.org");
        let new = NewUser {
            username: &name,
            email: &email,
            first_name: "",
            last_name: "",
            password_hash: None,
            installation_roles: &no_roles,
        };
        let u = tx.insert_user(new, now).await?;
        let created = UserCreated { user: u.username, email: u.email, installation_roles: Vec::new() };
        tx.record(None, now, &bench(), created.into())?;
        users.push(u.id);
    }
    let mut platform_ids = Vec::new();
    for i in 0..platforms {
        let id = add_platform(&mut tx, key, (role.id, &role.identifier), &format!("sim{i}"), Connection::simulated())
            .await?;
        platform_ids.push(id);
    }
    tx.commit().await?;
    Ok(Setup { ws: ws.id, role: role.id, role_name: role.identifier, users, platforms: platform_ids })
}

/// How a platform is reached, and the platform role the bench's project role maps to.
struct Connection {
    platform_type: PlatformType,
    settings: Map<String, Value>,
    secrets: Map<String, Value>,
    platform_role: String,
}

impl Connection {
    /// The simulated platforms (no settings: the bench's connector ignores them).
    fn simulated() -> Self {
        Connection {
            platform_type: PlatformType::OpenStack,
            settings: Map::new(),
            secrets: Map::new(),
            platform_role: "member".into(),
        }
    }
}

/// A platform mapping the bench's project role `(id, identifier)`, with its history event.
async fn add_platform(
    tx: &mut canopy_store::Tx,
    key: &SecretKey,
    (role_id, role_name): (uuid::Uuid, &str),
    ident: &str,
    c: Connection,
) -> anyhow::Result<uuid::Uuid> {
    let now = OffsetDateTime::now_utc();
    let p = tx
        .insert_platform(
            NewPlatform {
                identifier: ident,
                platform_type: c.platform_type,
                settings: &c.settings,
                secrets: &c.secrets,
                landing_zone_required: false,
                deletion: DeletionMode::Automatic,
                drift_policy: DriftPolicy::Repair,
            },
            key,
            now,
        )
        .await?;
    tx.set_role_mapping(p.id, &[(role_id, c.platform_role.clone())], now).await?;
    let created = PlatformCreated {
        platform: p.identifier.clone(),
        r#type: p.platform_type.as_str().to_owned(),
        secrets_set: p.secret_names.clone(),
        terms: PlatformTerms {
            settings: p.settings.clone(),
            role_mapping: [(role_name.to_owned(), c.platform_role)].into(),
            landing_zone_required: p.landing_zone_required,
            deletion: p.deletion.as_str().to_owned(),
            drift_policy: p.drift_policy.as_str().to_owned(),
        },
    };
    tx.record(None, now, &bench(), created.into())?;
    Ok(p.id)
}

/// `projects` projects named `PREFIX-N`, each with `per_project` bindings of
/// the set-up's users (expiring at `expires_at`) and a tenant per platform.
/// Returns the bindings' ids.
async fn add_projects(
    store: &Store,
    s: &Setup,
    prefix: &str,
    projects: usize,
    per_project: usize,
    expires_at: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..projects {
        let mut tx = store.write().await?;
        let ident = format!("{prefix}-{i}");
        let p = tx.insert_project(s.ws, &ident, &ident, now).await?;
        let created = ProjectCreated { project: ident.clone(), display_name: ident.clone(), tags: Map::new() };
        tx.record(Some(s.ws), now, &bench(), created.into())?;
        for j in 0..per_project {
            let user = s.users[(i * 7 + j) % s.users.len()];
            let b = NewBinding {
                project_id: p.id,
                subject: Subject::user(user),
                role_id: s.role,
                expires_at,
                justification: None,
                granted_by: "bench",
            };
            let b = tx.insert_binding(b, now).await?;
            let created = BindingCreated {
                binding: b.binding.id,
                project: ident.clone(),
                subject: format!("user:{}", b.subject_name),
                role: s.role_name.clone(),
                expires_at,
                justification: None,
                emergency: false,
                request: None,
            };
            tx.record(Some(s.ws), now, &bench(), created.into())?;
            ids.push(b.binding.id);
        }
        for pid in &s.platforms {
            let t = tx.insert_tenant(p.id, *pid, None, |id| format!("bench-{ident}-{}", id.simple()), now).await?;
            let created =
                TenantCreated { project: ident.clone(), platform: t.platform, landing_zone: None, name: t.name };
            tx.record(Some(s.ws), now, &bench(), created.into())?;
        }
        tx.commit().await?;
    }
    Ok(ids)
}

/// Users, a workspace, `platforms` platforms mapping one role, and
/// `projects` projects with `per_project` bindings and a tenant per platform.
async fn populate(
    store: &Store,
    key: &SecretKey,
    platforms: usize,
    projects: usize,
    per_project: usize,
) -> anyhow::Result<Setup> {
    let s = base(store, key, platforms, per_project * 10).await?;
    add_projects(store, &s, "p", projects, per_project, None).await?;
    Ok(s)
}

/// Run the engine as `canopy serve` does until no tenant is dirty.
async fn drain<K: Connector + 'static>(rep: &Arc<Replicator<K>>, store: &Store) -> anyhow::Result<StdDuration> {
    let started = Instant::now();
    let task = tokio::spawn(rep.clone().run(CancellationToken::new()));
    loop {
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        if store.tenant_backlog().await? == 0 {
            break;
        }
    }
    let took = started.elapsed();
    task.abort();
    Ok(took)
}

fn report(name: &str, took: StdDuration, calls: u64, latency: StdDuration, concurrency: usize) {
    let limit = latency.mul_f64(calls as f64 / concurrency as f64);
    let ratio = took.as_secs_f64() / limit.as_secs_f64().max(f64::EPSILON);
    println!(
        "{name}: {:.1} s for {calls} platform calls; limit {calls} × {} ms / {concurrency} = {:.1} s; ratio {ratio:.2}",
        took.as_secs_f64(),
        latency.as_millis(),
        limit.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Bench::Signin { canopy_bin, burst, bursts, pause_ms } = args.bench {
        let pause = StdDuration::from_millis(pause_ms);
        return signin::run(signin::Options { canopy_bin, burst, bursts, pause }).await;
    }
    if let Bench::B1Cloud(opts) = args.bench {
        return clouds::run(opts, args.database, args.workers, args.per_platform).await;
    }
    if let Bench::B4(opts) = args.bench {
        return rest::run(opts, args.database).await;
    }
    if let Bench::Pages(opts) = args.bench {
        return pages::run(opts, args.database).await;
    }
    if let Bench::B6(opts) = args.bench {
        let latency = StdDuration::from_millis(args.latency_ms);
        return b6::run(opts, args.database, latency, args.workers, args.per_platform).await;
    }
    let dir = tempfile::tempdir()?;
    let url = args.database.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Store::connect(&url).await.context("opening the database")?;
    let key = SecretKey::generate()?;
    let sim = Arc::new(Sim::default());
    let latency = StdDuration::from_millis(args.latency_ms);
    let config = ReplicationConfig {
        node: "bench".into(),
        workers: args.workers,
        per_platform: args.per_platform,
        poll: StdDuration::from_millis(50),
        ..ReplicationConfig::default()
    };
    let rep =
        Arc::new(Replicator::new(store.clone(), Arc::new(WallClock), key.clone(), SimConnector(sim.clone()), config));
    match args.bench {
        Bench::B1 { bindings } => {
            let (per_project, platforms) = (10, 6);
            let projects = bindings.div_ceil(per_project);
            let t = Instant::now();
            populate(&store, &key, platforms, projects, per_project).await?;
            println!(
                "B1 set-up: {projects} projects × {per_project} bindings × {platforms} tenants in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            sim.latency_ms.store(args.latency_ms, Ordering::Relaxed);
            let took = drain(&rep, &store).await?;
            let concurrency = args.workers.min(platforms * args.per_platform);
            report("B1", took, sim.calls.load(Ordering::Relaxed), latency, concurrency);
            println!("B1 platform writes: {}", sim.writes.load(Ordering::Relaxed));
        }
        Bench::B2 { tenants, bindings } => {
            let (per_project, platforms) = (10, 6);
            let t = Instant::now();
            let s = base(&store, &key, platforms, per_project * 10).await?;
            // the person: bound to enough projects for TENANTS tenants, replicated
            let now = OffsetDateTime::now_utc();
            let no_roles = BTreeSet::<InstallationRole>::new();
            let mut tx = store.write().await?;
            let victim = NewUser {
                username: "victim",
                email: "victim@example.org",
                first_name: "",
                last_name: "",
                password_hash: None,
                installation_roles: &no_roles,
            };
            let victim = tx.insert_user(victim, now).await?;
            let created = UserCreated { user: victim.username, email: victim.email, installation_roles: Vec::new() };
            tx.record(None, now, &bench(), created.into())?;
            let victim = victim.id;
            tx.commit().await?;
            let theirs = Setup {
                ws: s.ws,
                role: s.role,
                role_name: s.role_name.clone(),
                users: vec![victim],
                platforms: s.platforms.clone(),
            };
            let their_projects = tenants.div_ceil(platforms);
            add_projects(&store, &theirs, "v", their_projects, 1, None).await?;
            drain(&rep, &store).await?;
            let their_tenants = their_projects * platforms;
            // B1's backlog, not yet replicated
            add_projects(&store, &s, "p", bindings.div_ceil(per_project), per_project, None).await?;
            println!(
                "B2 set-up: the person holds a role in {their_tenants} tenants; a backlog of {} bindings × {platforms} tenants in {:.1} s",
                bindings,
                t.elapsed().as_secs_f64()
            );
            sim.latency_ms.store(args.latency_ms, Ordering::Relaxed);
            let task = tokio::spawn(rep.clone().run(CancellationToken::new()));
            tokio::time::sleep(StdDuration::from_secs(3)).await; // the backlog is running
            let backlog = store.tenant_backlog().await?;
            let (calls0, cpu0) = (sim.calls.load(Ordering::Relaxed), cpu_time());
            let start = Instant::now();
            let mut tx = store.write().await?;
            tx.update_user(victim, &UserChanges { active: Some(false), ..UserChanges::default() }, now).await?;
            let deactivated = UserDeactivated { user: "victim".to_owned(), reason: None, change: None };
            tx.record(None, OffsetDateTime::now_utc(), &bench(), deactivated.into())?;
            tx.commit().await?;
            let made = revokes_made(&sim, Some("victim"), their_tenants).await;
            let (calls, cpu) = (sim.calls.load(Ordering::Relaxed) - calls0, cpu0.zip(cpu_time()));
            task.abort();
            let (first, last) = first_last(start, &made);
            let by = |s: f64| made.iter().filter(|t| t.saturating_duration_since(start).as_secs_f64() <= s).count();
            println!(
                "B2: revoke calls made by 0.5 s: {}, 1 s: {}, 1.5 s: {}, 2 s: {}; platform calls for other tenants meanwhile: {}",
                by(0.5),
                by(1.0),
                by(1.5),
                by(2.0),
                calls.saturating_sub(2 * their_tenants as u64)
            );
            if let Some((a, b)) = cpu {
                println!("B2: CPU time of the engine and SQLite meanwhile: {:.2} s", (b - a).as_secs_f64());
            }
            let concurrency = args.workers.min(platforms * args.per_platform);
            let calls = 2 * their_tenants as u64; // observe and revoke per tenant
            let limit = latency.mul_f64(calls as f64 / concurrency as f64).as_secs_f64();
            println!(
                "B2: revoked with {backlog} other tenants waiting; first platform call after {first:.2} s, last after {last:.2} s"
            );
            println!(
                "B2: limit {calls} calls × {} ms / {concurrency} = {limit:.2} s; ratio {:.2}",
                latency.as_millis(),
                last / limit
            );
        }
        Bench::B5 { bindings } => {
            let t = Instant::now();
            let s = base(&store, &key, 1, 100).await?;
            let ids = add_projects(&store, &s, "e", bindings, 1, None).await?;
            drain(&rep, &store).await?;
            // every binding expires at one instant, a few seconds ahead
            let at = OffsetDateTime::now_utc() + time::Duration::seconds(10);
            for chunk in ids.chunks(200) {
                let mut tx = store.write().await?;
                for id in chunk {
                    let Some(before) = tx.binding(&id.to_string()).await? else { continue };
                    tx.update_binding(*id, s.role, Some(at), OffsetDateTime::now_utc()).await?;
                    let project = before.binding.project_id;
                    let project = tx.project_by_id(project).await?.map(|p| p.identifier).unwrap_or_default();
                    let changed = BindingChanged {
                        binding: *id,
                        project,
                        subject: format!("user:{}", before.subject_name),
                        old: BindingTerms {
                            role: before.role_identifier.clone(),
                            expires_at: before.binding.expires_at,
                        },
                        new: BindingTerms { role: before.role_identifier, expires_at: Some(at) },
                        justification: None,
                        emergency: false,
                        request: None,
                    };
                    tx.record(Some(s.ws), OffsetDateTime::now_utc(), &bench(), changed.into())?;
                }
                tx.commit().await?;
            }
            drain(&rep, &store).await?;
            println!(
                "B5 set-up: {bindings} bindings × 1 tenant each, replicated, in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            sim.latency_ms.store(args.latency_ms, Ordering::Relaxed);
            let task = tokio::spawn(rep.clone().run(CancellationToken::new()));
            let expiry =
                tokio::spawn(canopy_engine::expiry::run(store.clone(), Arc::new(WallClock), CancellationToken::new()));
            let wait = StdDuration::try_from(at - OffsetDateTime::now_utc()).unwrap_or_default();
            let start = Instant::now() + wait;
            let made = revokes_made(&sim, None, bindings).await;
            task.abort();
            expiry.abort();
            let (first, last) = first_last(start, &made);
            let concurrency = args.workers.min(args.per_platform);
            let calls = 2 * bindings as u64;
            let limit = latency.mul_f64(calls as f64 / concurrency as f64).as_secs_f64();
            println!("B5: after the instant, first platform call after {first:.2} s, last after {last:.2} s");
            println!(
                "B5: limit {calls} calls × {} ms / {concurrency} = {limit:.2} s; ratio {:.2}",
                latency.as_millis(),
                last / limit
            );
        }
        Bench::Signin { .. } | Bench::B1Cloud { .. } | Bench::B4 { .. } | Bench::B6 { .. } | Bench::Pages { .. } => {} // run above, each with a server or platform of its own
        Bench::B3 { projects } => {
            let per_project = 20;
            let t = Instant::now();
            populate(&store, &key, 1, projects, per_project).await?;
            drain(&rep, &store).await?; // the initial replication, at zero latency
            println!(
                "B3 set-up: {projects} projects × {per_project} bindings replicated in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            sim.latency_ms.store(args.latency_ms, Ordering::Relaxed);
            let (calls0, writes0) = (sim.calls.load(Ordering::Relaxed), sim.writes.load(Ordering::Relaxed));
            let cpu0 = cpu_time();
            let started = Instant::now();
            // every tenant is due for its reconcile: mark them all, at the scheduler's bounded rate
            let marker = {
                let store = store.clone();
                tokio::spawn(async move {
                    let far_future = OffsetDateTime::now_utc() + time::Duration::days(1);
                    while store.mark_for_reconcile(far_future, 1000, OffsetDateTime::now_utc()).await.unwrap_or(0) > 0 {
                    }
                })
            };
            marker.await?;
            let took = started.elapsed() + drain(&rep, &store).await?;
            let calls = sim.calls.load(Ordering::Relaxed) - calls0;
            report("B3", took, calls, latency, args.workers.min(args.per_platform));
            println!("B3 platform writes: {} (must be 0)", sim.writes.load(Ordering::Relaxed) - writes0);
            if let (Some(a), Some(b)) = (cpu0, cpu_time()) {
                println!("B3 CPU time: {:.1} s", (b - a).as_secs_f64());
            }
        }
    }
    if let Some(mib) = peak_memory_mib() {
        println!("peak memory: {mib:.0} MiB");
    }
    store.close().await;
    Ok(())
}
