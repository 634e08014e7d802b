//! AD4 under load (issue 13, part 5): an emergency revocation's tenants do
//! not wait behind replication runs in flight for longer than one platform
//! call. Ordinary runs yield to urgent work the way a stopping node's runs
//! stop: at their next step between platform calls, recording what the
//! platform confirmed and handing their tenant back, still dirty. The
//! platform's concurrency limit holds for urgent runs too: they go first
//! for a turn, they never add one.
//!
//! Driven by a platform whose grants each wait until the test lets one
//! through, so every interleaving below is forced, not timed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use canopy_engine::replication::{Connector, ReplicationConfig, Replicator};
use canopy_platforms::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use canopy_store::PlatformRecord;
use canopy_testkit::TestApp;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A platform in memory whose grants each wait until the test lets one
/// through, and that logs every grant and revoke in the order they happen.
pub(crate) struct Gate {
    grants_started: AtomicUsize,
    through: Semaphore,
    held: std::sync::Mutex<BTreeSet<(String, Held)>>,
    /// `grant PROJECT USER`, `granted PROJECT USER`, `revoke PROJECT USER`.
    log: std::sync::Mutex<Vec<String>>,
}

impl Gate {
    pub(crate) fn new() -> Arc<Gate> {
        Arc::new(Gate {
            grants_started: AtomicUsize::new(0),
            through: Semaphore::new(0),
            held: Default::default(),
            log: Default::default(),
        })
    }

    fn grants_started(&self) -> usize {
        self.grants_started.load(Ordering::SeqCst)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn logged(&self, line: &str) -> bool {
        self.log().iter().any(|l| l == line)
    }

    fn note(&self, what: &str, tenant: &TenantRef, user: &str) {
        // tenant names are WORKSPACE-PROJECT-SUFFIX
        let project = tenant.external_id.split('-').nth(1).unwrap_or_default();
        self.log.lock().unwrap().push(format!("{what} {project} {user}"));
    }
}

pub(crate) struct GateConnector(Arc<Gate>);

impl Connector for GateConnector {
    type Platform = GatePlatform;
    fn connect(&self, _: &PlatformRecord, _: &Map<String, Value>) -> Result<Arc<GatePlatform>, PlatformError> {
        Ok(Arc::new(GatePlatform(self.0.clone())))
    }
}

pub(crate) struct GatePlatform(Arc<Gate>);

impl Platform for GatePlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        Ok(TenantRef { external_id: spec.name.clone() })
    }
    async fn observe(&self, tenant: &TenantRef, _: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let held = self.0.held.lock().unwrap();
        Ok(held.iter().filter(|(t, _)| *t == tenant.external_id).map(|(_, h)| h.clone()).collect())
    }
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.0.grants_started.fetch_add(1, Ordering::SeqCst);
        self.0.note("grant", tenant, &user.username);
        self.0.through.acquire().await.unwrap().forget();
        let held = Held { username: user.username.clone(), platform_role: role.into() };
        self.0.held.lock().unwrap().insert((tenant.external_id.clone(), held));
        self.0.note("granted", tenant, &user.username);
        Ok(())
    }
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        self.0.note("revoke", tenant, username);
        let mut held = self.0.held.lock().unwrap();
        held.retain(|(t, h)| !(*t == tenant.external_id && h.username == username && h.platform_role == role));
        Ok(())
    }
    async fn find_resources(&self, _: &TenantRef) -> Result<Vec<String>, PlatformError> {
        Ok(vec![])
    }
    async fn delete_tenant(&self, _: &TenantRef) -> Result<(), PlatformError> {
        Ok(())
    }
}

pub(crate) fn replicator(
    app: &TestApp,
    gate: &Arc<Gate>,
    workers: usize,
    per_platform: usize,
) -> Arc<Replicator<GateConnector>> {
    let config = ReplicationConfig {
        node: "busy".into(),
        workers,
        per_platform,
        poll: StdDuration::from_millis(20),
        stop_grace: StdDuration::ZERO,
        ..ReplicationConfig::default()
    };
    Arc::new(Replicator::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret_key.clone(),
        GateConnector(gate.clone()),
        config,
    ))
}

/// Wait (at most 20 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < StdDuration::from_secs(20), "waited 20 s for {what}");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

async fn count(app: &TestApp, query: &str) -> i64 {
    app.sql_strings(&format!("SELECT CAST(({query}) AS TEXT)")).await[0].parse().unwrap()
}

/// Platform `cloud`, workspace `w`, and the users named.
pub(crate) async fn setup(app: &TestApp, users: &[&str]) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    let platform = json!({"identifier": "cloud", "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "unused"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &admin, platform).await.expect(201);
    for u in users {
        app.user(u).await;
        app.invite(&admin, "w", u, "workspace_member").await;
    }
}

/// Project `project` with a binding of each user and a tenant on `cloud`.
pub(crate) async fn project(app: &TestApp, project: &str, users: &[&str]) {
    let admin = app.admin_token.clone();
    app.project(&admin, "w", project).await;
    bind(app, project, users).await;
    let p = format!("/api/v1/workspaces/w/projects/{project}");
    app.post(&format!("{p}/tenants"), &admin, json!({"platform": "cloud"})).await.expect(201);
}

async fn bind(app: &TestApp, project: &str, users: &[&str]) {
    let p = format!("/api/v1/workspaces/w/projects/{project}/bindings");
    for u in users {
        app.post(&p, &app.admin_token, json!({"user": u, "role": "project_user"})).await.expect(201);
    }
}

/// Replicate everything now, letting `grants` grants through.
pub(crate) async fn converge(app: &TestApp, gate: &Arc<Gate>, grants: usize) {
    gate.through.add_permits(grants);
    replicator(app, gate, 4, 4).run_until_idle().await.unwrap();
}

async fn revoke_emergency(app: &TestApp, user: &str) {
    let body = json!({"user": user, "justification": "stolen laptop"});
    app.post("/api/v1/admin/emergency/revoke", &app.admin_token, body).await.expect(201);
}

/// Every worker is busy with an ordinary run (one worker, inside the first
/// of three grants) when an emergency revocation comes: the person's tenant
/// is claimed at once, in place of that run, and revoked while the run's
/// call is still in progress; the run makes no further call, records the
/// grant the platform confirmed and hands its tenant back, still dirty.
async fn ad4_urgent_revocation_preempts_runs_in_flight(app: TestApp) {
    setup(&app, &["vic", "u0", "u1", "u2"]).await;
    let gate = Gate::new();
    project(&app, "vp", &["vic"]).await;
    converge(&app, &gate, 1).await;
    project(&app, "big", &["u0", "u1", "u2"]).await;

    let rep = replicator(&app, &gate, 1, 4);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    until("the ordinary run inside its first grant", async || gate.logged("grant big u0")).await;
    revoke_emergency(&app, "vic").await;
    until("the urgent revocation", async || gate.logged("revoke vp vic")).await;
    assert_eq!(gate.log(), ["grant vp vic", "granted vp vic", "grant big u0", "revoke vp vic"]);
    assert_eq!(rep.yields_asked(), 1, "the ordinary run was asked to yield");

    // the ordinary run's call answers; it makes no other, records its grant, hands its tenant back
    stop.cancel();
    gate.through.add_permits(1);
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();
    assert_eq!(gate.grants_started(), 2, "no platform call after the one in progress (one was the set-up's)");
    let confirmed = "SELECT COUNT(*) FROM tenant_assignments WHERE account = 'u0' AND applied_at IS NOT NULL";
    assert_eq!(count(&app, confirmed).await, 1, "the grant the platform confirmed is recorded");
    let big = "SELECT t.id FROM tenants t JOIN projects p ON p.id = t.project_id WHERE p.identifier = 'big'";
    let dirty = count(&app, &format!("SELECT COUNT(*) FROM tenant_work WHERE tenant_id IN ({big})")).await;
    assert_eq!(dirty, 1, "the ordinary tenant is still dirty");
    let revoked = count(&app, "SELECT COUNT(*) FROM tenant_revocations WHERE account = 'vic'").await;
    assert_eq!(revoked, 1, "the revocation is confirmed");

    // the ordinary work is taken up again and converges
    converge(&app, &gate, 2).await;
    let held: Vec<String> = gate.held.lock().unwrap().iter().map(|(_, h)| h.username.clone()).collect();
    assert_eq!(held, ["u0", "u1", "u2"]);
}

/// The platform allows one run at a time, and an ordinary run holds that
/// turn (inside the first of its grants) when an emergency revocation comes:
/// the urgent run waits for the turn without exceeding the limit, the
/// ordinary run yields it after its call, and the revocation is the next
/// call on the platform, before any other grant.
async fn ad4_urgent_revocation_takes_the_platforms_turn_after_one_call(app: TestApp) {
    setup(&app, &["vic", "u0", "u1", "u2"]).await;
    let gate = Gate::new();
    project(&app, "vp", &["vic"]).await;
    converge(&app, &gate, 1).await;
    project(&app, "big", &["u0", "u1", "u2"]).await;

    let rep = replicator(&app, &gate, 4, 1);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    until("the ordinary run inside its first grant", async || gate.logged("grant big u0")).await;
    revoke_emergency(&app, "vic").await;
    until("the ordinary run asked to yield its turn", async || rep.yields_asked() == 1).await;
    assert!(!gate.logged("revoke vp vic"), "the platform's one turn is taken: the urgent run waits");

    gate.through.add_permits(1);
    until("the urgent revocation", async || gate.logged("revoke vp vic")).await;
    let log = gate.log();
    assert_eq!(log[..5], ["grant vp vic", "granted vp vic", "grant big u0", "granted big u0", "revoke vp vic"]);
    stop.cancel();
    gate.through.add_permits(10);
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();
    converge(&app, &gate, 10).await;
    let held: Vec<String> = gate.held.lock().unwrap().iter().map(|(_, h)| h.username.clone()).collect();
    assert_eq!(held, ["u0", "u1", "u2"]);
}

/// An ordinary run is working on a tenant (inside the first of its grants)
/// when an emergency revocation reaches that very tenant: the run yields
/// after its call, and the tenant is taken up again as urgent, its
/// revocation made before the grants left.
async fn ad4_a_run_on_a_tenant_that_becomes_urgent_yields_after_its_call(app: TestApp) {
    setup(&app, &["vic", "u0", "u1", "u2"]).await;
    let gate = Gate::new();
    project(&app, "big", &["vic"]).await;
    converge(&app, &gate, 1).await;
    bind(&app, "big", &["u0", "u1", "u2"]).await;

    let rep = replicator(&app, &gate, 4, 4);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    until("the ordinary run inside its first grant", async || gate.logged("grant big u0")).await;
    revoke_emergency(&app, "vic").await;
    until("the run on the tenant asked to yield", async || rep.yields_asked() == 1).await;
    gate.through.add_permits(1);
    until("the urgent revocation", async || gate.logged("revoke big vic")).await;
    let log = gate.log();
    assert_eq!(log[..4], ["grant big vic", "granted big vic", "grant big u0", "granted big u0"]);
    assert_eq!(log[4], "revoke big vic", "revoked before any other grant: {log:?}");
    stop.cancel();
    gate.through.add_permits(10);
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();
    converge(&app, &gate, 10).await;
    let held: Vec<String> = gate.held.lock().unwrap().iter().map(|(_, h)| h.username.clone()).collect();
    assert_eq!(held, ["u0", "u1", "u2"]);
}

canopy_testkit::backend_tests!(
    ad4_urgent_revocation_preempts_runs_in_flight,
    ad4_urgent_revocation_takes_the_platforms_turn_after_one_call,
    ad4_a_run_on_a_tenant_that_becomes_urgent_yields_after_its_call,
);
