//! B6: an installation of a million bindings (issue 13, part 4).
//!
//! The real `canopy serve` (release build, as the sign-in bench starts it)
//! on a database seeded through the store, at each size asked for (default
//! 100,000 and 1,000,000 bindings; the larger grows from the smaller):
//!
//! - the time from the process's start to `/readyz` answering 200 (nothing
//!   may be loaded whole at start);
//! - its resident memory once ready, after its first scheduler rounds
//!   (replication's scheduler, the expiry and payment jobs), and after a
//!   round of reads by a signed-in admin (lists, a project's bindings, the
//!   history, the payment forecast).
//!
//! At the largest size, the engine's full reconcile as B3 runs it: every
//! tenant marked for its reconcile, the replicator running as in `canopy
//! serve` against the simulated platform, no drift (platform writes must be
//! 0); time and its ratio to `calls × latency / per-platform limit`, CPU
//! time, and the bench process's memory before and at its peak.
//!
//! The layout: `workspaces` workspaces with ten payment methods each,
//! `users` users, one platform, projects of `per_project` bindings (half
//! with a substitute payment method) and one tenant each. Seeding is set-up:
//! its time is printed but is not a figure. Every tenant is written as
//! replicated (as a run records it) and the simulated platform holds its
//! assignments, so the server has no work waiting, every tenant was
//! reconciled moments ago, and the full reconcile finds no drift.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_domain::Subject;
use canopy_domain::events::{
    BindingCreated, HistoryChainCreated, PaymentMethodCreated, PaymentMethodTerms, PlatformCreated, PlatformTerms,
    ProjectAspect, ProjectCreated, ProjectPayment, ProjectRoleCreated, ProjectUpdated, TenantCreated, UserCreated,
    WorkspaceCreated,
};
use canopy_domain::platforms::{DeletionMode, PlatformType};
use canopy_domain::replication::{Assignment, DriftPolicy};
use canopy_domain::roles::InstallationRole;
use canopy_engine::replication::Replicator;
use canopy_store::{NewBinding, NewPlatform, NewUser, Outcome, SecretKey, Store};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::date;
use tokio::process::Child;

use crate::signin::{ADMIN_PASSWORD, cpu_time as server_cpu, memory, start_server_timed};
use crate::{Sim, SimConnector, bench, drain, report};

/// What `canopy-bench b6` was asked for.
#[derive(clap::Args)]
pub struct Options {
    /// The `canopy` binary to start.
    #[arg(long, default_value = "target/release/canopy")]
    pub canopy_bin: PathBuf,
    /// The installation sizes measured, in bindings, ascending.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub sizes: Vec<usize>,
    /// Bindings per project (each project has one tenant).
    #[arg(long, default_value_t = 20)]
    pub per_project: usize,
    #[arg(long, default_value_t = 10)]
    pub workspaces: usize,
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Projects written per transaction while seeding.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Seconds the server runs idle before its memory is read again (its
    /// scheduler looks every 10 s).
    #[arg(long, default_value_t = 12)]
    pub idle_seconds: u64,
    /// Measure the server only, not the engine's full reconcile.
    #[arg(long)]
    pub skip_reconcile: bool,
}

/// What the seeding made that later steps need.
struct Installation {
    workspaces: Vec<(uuid::Uuid, String)>,
    /// Each workspace's payment methods.
    methods: Vec<Vec<uuid::Uuid>>,
    users: Vec<(uuid::Uuid, String)>,
    role: (uuid::Uuid, String),
    platform: (uuid::Uuid, String),
    /// Projects made so far.
    projects: usize,
}

/// The workspaces, payment methods, users, project role and platform.
async fn seed_base(store: &Store, key: &SecretKey, opts: &Options) -> anyhow::Result<Installation> {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await?;
    let role = tx.insert_project_role("bench_user", "Bench user", "", now).await?;
    let created = ProjectRoleCreated { role: role.identifier.clone(), display_name: role.display_name.clone() };
    tx.record(None, now, &bench(), created.into())?;
    let mut workspaces = Vec::new();
    let mut methods = Vec::new();
    for w in 0..opts.workspaces {
        let ident = format!("ws{w}");
        let ws = tx.insert_workspace(&ident, &ident, now).await?;
        let created = WorkspaceCreated { workspace: ws.identifier.clone(), display_name: ws.display_name.clone() };
        tx.record(Some(ws.id), now, &bench(), created.into())?;
        let chain =
            HistoryChainCreated { workspace: ws.identifier.clone(), chain: ws.id.to_string(), recorded_later: false };
        tx.record(None, now, &bench(), chain.into())?;
        let mut mine = Vec::new();
        for m in 0..10 {
            let name = format!("budget {m}");
            let expires_on = date!(2027 - 12 - 31);
            let method = tx.insert_payment_method(ws.id, &name, 1000.0, expires_on, &Map::new(), now).await?;
            let created = PaymentMethodCreated {
                payment_method: method.id,
                terms: PaymentMethodTerms { name, amount: 1000.0, expires_on },
            };
            tx.record(Some(ws.id), now, &bench(), created.into())?;
            mine.push(method.id);
        }
        workspaces.push((ws.id, ws.identifier));
        methods.push(mine);
    }
    let no_roles = BTreeSet::<InstallationRole>::new();
    let mut users = Vec::new();
    for i in 0..opts.users {
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
        let created = UserCreated { user: u.username.clone(), email: u.email, installation_roles: Vec::new() };
        tx.record(None, now, &bench(), created.into())?;
        users.push((u.id, u.username));
    }
    let p = tx
        .insert_platform(
            NewPlatform {
                identifier: "sim0",
                platform_type: PlatformType::OpenStack,
                settings: &Map::new(),
                secrets: &Map::new(),
                landing_zone_required: false,
                deletion: DeletionMode::Automatic,
                drift_policy: DriftPolicy::Repair,
            },
            key,
            now,
        )
        .await?;
    tx.set_role_mapping(p.id, &[(role.id, "member".to_owned())], now).await?;
    let created = PlatformCreated {
        platform: p.identifier.clone(),
        r#type: p.platform_type.as_str().to_owned(),
        secrets_set: p.secret_names.clone(),
        terms: PlatformTerms {
            settings: p.settings.clone(),
            role_mapping: [(role.identifier.clone(), "member".to_owned())].into(),
            landing_zone_required: p.landing_zone_required,
            deletion: p.deletion.as_str().to_owned(),
            drift_policy: p.drift_policy.as_str().to_owned(),
        },
    };
    tx.record(None, now, &bench(), created.into())?;
    tx.commit().await?;
    Ok(Installation {
        workspaces,
        methods,
        users,
        role: (role.id, role.identifier),
        platform: (p.id, p.identifier),
        projects: 0,
    })
}

/// Add projects until the installation holds `bindings` bindings: each with
/// its bindings, a payment method (and every other one a substitute) and a
/// tenant, `batch` projects per transaction, every change with its event.
/// Each tenant is written replicated, as the engine's run records it (its
/// platform id, its assignments confirmed, succeeded and reconciled now, its
/// work row finished), and the simulated platform holds those assignments:
/// replicating them through the engine would take the set-up ten minutes
/// more at a million bindings and measure nothing asked for.
async fn grow(
    store: &Store,
    sim: &Sim,
    inst: &mut Installation,
    opts: &Options,
    bindings: usize,
) -> anyhow::Result<()> {
    let target = bindings.div_ceil(opts.per_project.max(1));
    let (users, workspaces) = (inst.users.len().max(1), inst.workspaces.len().max(1));
    while inst.projects < target {
        let now = OffsetDateTime::now_utc();
        let mut tx = store.write().await?;
        let end = (inst.projects + opts.batch.max(1)).min(target);
        for i in inst.projects..end {
            let w = i % workspaces;
            let (Some((ws, _)), Some(methods)) = (inst.workspaces.get(w), inst.methods.get(w)) else {
                bail!("workspace {w} is missing");
            };
            let ident = format!("p{i}");
            let p = tx.insert_project(*ws, &ident, &ident, now).await?;
            let created = ProjectCreated { project: ident.clone(), display_name: ident.clone(), tags: Map::new() };
            tx.record(Some(*ws), now, &bench(), created.into())?;
            let method = methods.get(i % methods.len().max(1)).copied();
            let substitute = if i % 2 == 0 { methods.get((i + 1) % methods.len().max(1)).copied() } else { None };
            tx.set_project_payment(p.id, method, substitute).await?;
            let aspect = |payment_method, substitute_payment_method| ProjectAspect {
                display_name: None,
                payment: Some(ProjectPayment { payment_method, substitute_payment_method }),
                tags: None,
            };
            let updated =
                ProjectUpdated { project: ident.clone(), old: aspect(None, None), new: aspect(method, substitute) };
            tx.record(Some(*ws), now, &bench(), updated.into())?;
            let mut accounts = Vec::new();
            for j in 0..opts.per_project {
                let Some((user, name)) = inst.users.get((i * 7 + j * 13) % users) else { continue };
                accounts.push(name.clone());
                let b = NewBinding {
                    project_id: p.id,
                    subject: Subject::user(*user),
                    role_id: inst.role.0,
                    expires_at: None,
                    justification: None,
                    granted_by: "bench",
                };
                let b = tx.insert_binding(b, now).await?;
                let created = BindingCreated {
                    binding: b.binding.id,
                    project: ident.clone(),
                    subject: format!("user:{name}"),
                    role: inst.role.1.clone(),
                    expires_at: None,
                    justification: None,
                    emergency: false,
                    request: None,
                };
                tx.record(Some(*ws), now, &bench(), created.into())?;
            }
            let t =
                tx.insert_tenant(p.id, inst.platform.0, None, |id| format!("b6-{ident}-{}", id.simple()), now).await?;
            let created = TenantCreated {
                project: ident.clone(),
                platform: inst.platform.1.clone(),
                landing_zone: None,
                name: t.name.clone(),
            };
            tx.record(Some(*ws), now, &bench(), created.into())?;
            // replicated, as a run records it
            let external_id = format!("{}/{}", inst.platform.1, t.name);
            tx.set_tenant_external_id(t.id, &external_id).await?;
            for account in &accounts {
                let a = Assignment { user: account.clone(), platform_role: "member".to_owned() };
                tx.confirm_grant(t.id, &a, now).await?;
            }
            tx.set_tenant_outcome(t.id, Outcome::Succeeded, now).await?;
            sim.hold(&external_id, &accounts, "member");
        }
        tx.commit().await?;
        // the new tenants' work rows, finished as their runs would
        let lease = now + time::Duration::minutes(10);
        let claims = store.claim_tenants("b6-seed", now, lease, u32::try_from(end - inst.projects)?).await?;
        let mut tx = store.write().await?;
        for c in &claims {
            tx.finish_tenant_work(c).await?;
        }
        tx.commit().await?;
        inst.projects = end;
    }
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A running `canopy serve` and what its start took.
struct Server {
    child: Child,
    pid: u32,
    base: String,
    /// What it logged until it served, with when (from the spawn).
    log: Vec<(Duration, String)>,
}

/// Start the server and wait for `/readyz`: the time to its first log line
/// naming its address, and to the first 200.
async fn start(bin: &Path, dir: &Path, database: &str, client: &reqwest::Client) -> anyhow::Result<(Server, f64, f64)> {
    let started = Instant::now();
    let (child, addr, log) = start_server_timed(bin, dir, database).await?;
    let listening = started.elapsed().as_secs_f64();
    let pid = child.id().context("canopy serve has no process id (did it exit?)")?;
    let base = format!("http://{addr}");
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("/readyz did not answer 200 within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed().as_secs_f64();
    Ok((Server { child, pid, base, log }, listening, ready))
}

/// The admin's session token.
async fn sign_in(client: &reqwest::Client, server: &Server) -> anyhow::Result<String> {
    let r = client
        .post(format!("{}/api/v1/auth/token", server.base))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await?;
    let body: Value = r.json().await?;
    Ok(body["token"].as_str().context("the admin could not sign in")?.to_owned())
}

/// Reads an admin makes, five rounds: lists, a project's bindings and
/// tenants, the history, current access, the payment methods and their
/// forecast, `/me`. Answers how many were made and the slowest (ms, path).
async fn reads(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    inst: &Installation,
) -> anyhow::Result<(usize, f64, String)> {
    let mut paths = vec!["/api/v1/me".to_owned(), "/api/v1/workspaces?limit=50".to_owned()];
    let projects = inst.projects.max(1);
    for (k, (_, ws)) in inst.workspaces.iter().enumerate() {
        // a project of this workspace (project i is in workspace i mod workspaces), in the middle
        let w = inst.workspaces.len().max(1);
        let i = projects / 2 / w * w + k;
        let p = format!("p{}", if i < inst.projects { i } else { k });
        let w = format!("/api/v1/workspaces/{ws}");
        paths.extend([
            format!("{w}/projects?limit=50"),
            format!("{w}/projects/{p}/bindings?limit=50"),
            format!("{w}/projects/{p}/tenants"),
            format!("{w}/members?limit=50"),
            format!("{w}/history?limit=50"),
            format!("{w}/payment-methods"),
            format!("{w}/payment-methods/forecast"),
            format!("{w}/expired-access?limit=50"),
        ]);
    }
    let mut slowest = (0.0_f64, String::new());
    let mut n = 0;
    for round in 0..5 {
        for path in &paths {
            let t = Instant::now();
            let r = client.get(format!("{}{path}", server.base)).bearer_auth(token).send().await?;
            let status = r.status();
            let _ = r.bytes().await?;
            if !status.is_success() && round == 0 {
                println!("  note: GET {path} answered {status}");
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if ms > slowest.0 {
                slowest = (ms, path.clone());
            }
            n += 1;
        }
    }
    Ok((n, slowest.0, slowest.1))
}

/// Measure the server on the installation as it is: start to `/readyz`,
/// memory at each stage.
async fn measure_server(
    opts: &Options,
    bin: &Path,
    dir: &Path,
    database: &str,
    client: &reqwest::Client,
    inst: &Installation,
    bindings: usize,
) -> anyhow::Result<()> {
    let (mut server, listening, ready) = start(bin, dir, database, client).await?;
    let at_ready = memory(server.pid).context("reading the server's memory")?;
    tokio::time::sleep(Duration::from_secs(opts.idle_seconds)).await;
    let idle = memory(server.pid).context("reading the server's memory")?;
    let cpu_idle = server_cpu(server.pid);
    let token = sign_in(client, &server).await?;
    let signed_in = memory(server.pid).context("reading the server's memory")?;
    let (n, slowest, slowest_path) = reads(client, &server, &token, inst).await?;
    let after = memory(server.pid).context("reading the server's memory")?;
    println!(
        "B6 {bindings} bindings: canopy serve listening after {listening:.2} s, /readyz 200 after {ready:.2} s (target ≤ 5 s: ratio {:.2})",
        ready / 5.0
    );
    for (at, line) in &server.log {
        // the message, without the time stamp and level the server puts first
        let message = line.split_once(": ").map_or(line.as_str(), |(_, m)| m);
        println!("  {:>6.3} s  {message}", at.as_secs_f64());
    }
    println!(
        "B6 {bindings} bindings: RSS at ready {:.1} MiB; after {} s idle {:.1} MiB (CPU so far {}); after the admin's sign-in (one argon2id, 19 MiB) {:.1} MiB; after {n} reads (slowest {slowest:.0} ms, {slowest_path}) {:.1} MiB; peak {:.1} MiB (target ≤ 100 MB at 100,000: ratio {:.2})",
        mib(at_ready.rss),
        opts.idle_seconds,
        mib(idle.rss),
        cpu_idle.map(|c| format!("{:.2} s", c.as_secs_f64())).unwrap_or_else(|| "?".into()),
        mib(signed_in.rss),
        mib(after.rss),
        mib(after.hwm),
        (after.hwm as f64 * 1024.0) / 100e6,
    );
    let _ = server.child.kill().await;
    Ok(())
}

/// Resident memory of this process now, and reset its peak (Linux
/// `clear_refs` 5), so that the next peak read is of what follows.
fn reset_peak() -> Option<u64> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    memory(std::process::id()).map(|m| m.rss)
}

/// `canopy-bench b6`.
pub async fn run(
    opts: Options,
    database: Option<String>,
    latency: Duration,
    workers: usize,
    per_platform: usize,
) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = std::fs::canonicalize(&opts.canopy_bin)
        .with_context(|| format!("{} (build it: cargo build --release -p canopy)", opts.canopy_bin.display()))?;
    let dir = tempfile::tempdir()?;
    let database = database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).no_proxy().build()?;
    // the server makes its admin on the empty database, then stops
    let (mut first, _, _) = start(&bin, dir.path(), &database, &client).await?;
    let _ = first.child.kill().await;
    let _ = first.child.wait().await;

    let mut store = Store::connect(&database).await.context("opening the database beside the server")?;
    let key = SecretKey::generate()?;
    let sim = Arc::new(Sim::default());
    let t = Instant::now();
    let mut inst = seed_base(&store, &key, &opts).await?;
    println!(
        "B6 set-up: {} workspaces, {} users, one platform in {:.1} s",
        opts.workspaces,
        opts.users,
        t.elapsed().as_secs_f64()
    );
    let mut sizes = opts.sizes.clone();
    sizes.sort_unstable();
    for &bindings in &sizes {
        let t = Instant::now();
        let before = inst.projects;
        grow(&store, &sim, &mut inst, &opts, bindings).await?;
        let seeded = t.elapsed().as_secs_f64();
        let made = (inst.projects - before) * opts.per_project;
        println!(
            "B6 set-up: {made} bindings more ({} projects of {}, a replicated tenant each) in {seeded:.1} s ({:.0} bindings/s)",
            inst.projects - before,
            opts.per_project,
            made as f64 / seeded.max(f64::EPSILON)
        );
        // the server starts as after a clean stop: nothing else has the database open,
        // and SQLite's log of the seeding's large transactions is checkpointed
        store.close().await;
        measure_server(&opts, &bin, dir.path(), &database, &client, &inst, inst.projects * opts.per_project).await?;
        store = Store::connect(&database).await.context("opening the database again")?;
    }
    if !opts.skip_reconcile {
        let config = canopy_engine::replication::ReplicationConfig {
            node: "bench".into(),
            workers,
            per_platform,
            poll: Duration::from_millis(50),
            ..canopy_engine::replication::ReplicationConfig::default()
        };
        let clock = Arc::new(crate::WallClock);
        let rep = Arc::new(Replicator::new(store.clone(), clock, key.clone(), SimConnector(sim.clone()), config));
        let total = inst.projects * opts.per_project;
        sim.latency_ms.store(u64::try_from(latency.as_millis()).unwrap_or(50), Ordering::Relaxed);
        let (calls0, writes0) = (sim.calls.load(Ordering::Relaxed), sim.writes.load(Ordering::Relaxed));
        let rss_before = reset_peak();
        let cpu0 = crate::cpu_time();
        let started = Instant::now();
        // every tenant is due for its reconcile: mark them all, at the scheduler's bounded rate
        let far_future = OffsetDateTime::now_utc() + time::Duration::days(1);
        while store.mark_for_reconcile(far_future, 1000, OffsetDateTime::now_utc()).await? > 0 {}
        let took = started.elapsed() + drain(&rep, &store).await?;
        let calls = sim.calls.load(Ordering::Relaxed) - calls0;
        report(
            &format!("B6 full reconcile of {} tenants ({total} bindings)", inst.projects),
            took,
            calls,
            latency,
            workers.min(per_platform),
        );
        println!("B6 platform writes: {} (must be 0)", sim.writes.load(Ordering::Relaxed) - writes0);
        if let (Some(a), Some(b)) = (cpu0, crate::cpu_time()) {
            println!(
                "B6 reconcile CPU time: {:.1} s (bench process: engine, SQLite when embedded)",
                (b - a).as_secs_f64()
            );
        }
        if let (Some(before), Some(now)) = (rss_before, memory(std::process::id())) {
            println!(
                "B6 reconcile memory: RSS before {:.1} MiB, peak during {:.1} MiB (+{:.1} MiB)",
                mib(before),
                mib(now.hwm),
                mib(now.hwm.saturating_sub(before))
            );
        }
    }
    store.close().await;
    Ok(())
}
