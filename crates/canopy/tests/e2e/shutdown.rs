//! Issue 12, item 5: a node that stops. Every loop of the engine returns once
//! its token is cancelled; a replication run in progress finishes within the
//! grace period, or else stops between two platform calls, records what the
//! platform confirmed and hands its tenant back at once; a run stuck inside
//! a platform call is cut and keeps its lease until it runs out; the mailer
//! finishes the mail it is sending and takes no other. The process as a
//! whole (SIGTERM, exit 0, another node taking over) is in `nodes.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_engine::checkpoints::CheckpointExport;
use canopy_engine::mailer::Mailer;
use canopy_engine::replication::{Adapters, Connector, ReplicationConfig, Replicator};
use canopy_platforms::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use canopy_store::PlatformRecord;
use canopy_testkit::TestApp;
use serde_json::{Map, Value, json};
use time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A platform in memory whose grants each wait until the test lets one through.
struct Gate {
    /// Grants that were called (and are waiting or done).
    started: AtomicUsize,
    through: Semaphore,
    /// (tenant, assignment) the platform holds.
    held: std::sync::Mutex<BTreeSet<(String, Held)>>,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate { started: AtomicUsize::new(0), through: Semaphore::new(0), held: Default::default() })
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

struct GateConnector(Arc<Gate>);

impl Connector for GateConnector {
    type Platform = GatePlatform;
    fn connect(&self, _: &PlatformRecord, _: &Map<String, Value>) -> Result<Arc<GatePlatform>, PlatformError> {
        Ok(Arc::new(GatePlatform(self.0.clone())))
    }
}

struct GatePlatform(Arc<Gate>);

impl Platform for GatePlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        Ok(TenantRef { external_id: spec.name.clone() })
    }
    async fn observe(&self, tenant: &TenantRef, _: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let held = self.0.held.lock().unwrap();
        Ok(held.iter().filter(|(t, _)| *t == tenant.external_id).map(|(_, h)| h.clone()).collect())
    }
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.0.started.fetch_add(1, Ordering::SeqCst);
        self.0.through.acquire().await.unwrap().forget();
        let held = Held { username: user.username.clone(), platform_role: role.into() };
        self.0.held.lock().unwrap().insert((tenant.external_id.clone(), held));
        Ok(())
    }
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
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

/// Workspace `w` with `people` members, each bound in every one of
/// `tenants` projects, each project with a tenant on platform `cloud`
/// (bound first, so the tenant's first run has every grant to make).
async fn setup(app: &TestApp, tenants: usize, people: usize) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    let platform = json!({"identifier": "cloud", "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "unused"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", &admin, platform).await.expect(201);
    for i in 0..people {
        app.user(&format!("u{i}")).await;
        app.invite(&admin, "w", &format!("u{i}"), "workspace_member").await;
    }
    for t in 0..tenants {
        app.project(&admin, "w", &format!("p{t}")).await;
        let p = format!("/api/v1/workspaces/w/projects/p{t}");
        for i in 0..people {
            app.post(&format!("{p}/bindings"), &admin, json!({"user": format!("u{i}"), "role": "project_user"}))
                .await
                .expect(201);
        }
        app.post(&format!("{p}/tenants"), &admin, json!({"platform": "cloud"})).await.expect(201);
    }
}

fn replicator(app: &TestApp, gate: &Arc<Gate>, config: ReplicationConfig) -> Arc<Replicator<GateConnector>> {
    let config = ReplicationConfig { poll: StdDuration::from_millis(20), ..config };
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
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn count(app: &TestApp, query: &str) -> i64 {
    app.sql_strings(&format!("SELECT CAST(({query}) AS TEXT)")).await[0].parse().unwrap()
}

/// Once stopped, a node claims no more tenants, and a run in progress goes
/// on to its end within the grace period.
async fn tn4_a_stopping_node_claims_nothing_more_and_lets_a_run_finish_within_the_grace_period(app: TestApp) {
    setup(&app, 2, 3).await;
    let gate = Gate::new();
    let config = ReplicationConfig {
        node: "stopping".into(),
        workers: 1,
        stop_grace: StdDuration::from_secs(60),
        ..ReplicationConfig::default()
    };
    let rep = replicator(&app, &gate, config);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    until("the first grant", async || gate.started() == 1).await;
    stop.cancel();
    // a slot frees up when the run ends; nothing may take it
    gate.through.add_permits(100);
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();

    assert_eq!((gate.started(), gate.held()), (3, 3), "the run in progress made all its grants");
    let statuses = app.sql_strings("SELECT status FROM tenants ORDER BY status").await;
    assert_eq!(statuses, ["pending", "succeeded"], "one tenant converged, the other was never started");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tenant_work WHERE leased_by IS NULL").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tenant_work").await, 1, "the other tenant is still dirty");
}

/// A run still going when the grace period ends stops at its next step
/// between platform calls: the call in progress finishes, what the platform
/// confirmed is recorded, no further call is made, and the tenant is handed
/// back still dirty, so any node claims it at once; a run waiting for its
/// platform's turn stops waiting and hands its tenant back too.
async fn tn4_a_run_still_going_after_the_grace_period_stops_between_calls_and_hands_its_tenant_back(app: TestApp) {
    setup(&app, 2, 3).await;
    let gate = Gate::new();
    let config = ReplicationConfig {
        node: "stopping".into(),
        workers: 2,
        per_platform: 1,
        lease: Duration::minutes(10),
        stop_grace: StdDuration::from_millis(200),
        stop_call_wait: StdDuration::from_secs(60),
        ..ReplicationConfig::default()
    };
    let rep = replicator(&app, &gate, config);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    // one run is inside its first grant, the other waits for the platform
    until("the first grant", async || gate.started() == 1).await;
    until("both leases", async || {
        count(&app, "SELECT COUNT(*) FROM tenant_work WHERE leased_by IS NOT NULL").await == 2
    })
    .await;
    stop.cancel();
    // when the grace period is over, the waiting run gives its tenant back at once
    until("the waiting run's tenant handed back", async || {
        count(&app, "SELECT COUNT(*) FROM tenant_work WHERE leased_by IS NULL").await == 1
    })
    .await;
    // the call in progress answers; the run makes no other
    gate.through.add_permits(1);
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();
    assert_eq!((gate.started(), gate.held()), (1, 1), "no platform call after the one in progress");

    // both tenants are dirty and free: another node takes them up at once
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tenant_work WHERE leased_by IS NULL").await, 2);
    let statuses = app.sql_strings("SELECT status FROM tenants").await;
    assert!(statuses.iter().all(|s| s == "pending"), "a stopped run is no failure: {statuses:?}");
    // the grant the platform confirmed is recorded, with its history event
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tenant_assignments WHERE applied_at IS NOT NULL").await, 1);
    let events = app.sql_strings("SELECT details FROM history_events WHERE kind = 'tenant_replicated'").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!((event["granted"].as_array().unwrap().len(), &event["node"]), (1, &json!("stopping")));
    let now = app.clock.now();
    let claims = app.store.claim_tenants("next-node", now, now + Duration::minutes(10), 10).await.unwrap();
    assert_eq!(claims.len(), 2, "taken up at once, not when the ten-minute leases would have run out");

    // the next node converges them
    let leases: Vec<_> = claims.iter().map(|c| (c.tenant_id, c.token.clone())).collect();
    app.store.release_leases(&leases).await.unwrap();
    gate.through.add_permits(100);
    let next = replicator(&app, &gate, ReplicationConfig { node: "next-node".into(), ..ReplicationConfig::default() });
    next.run_until_idle().await.unwrap();
    assert_eq!(gate.held(), 6);
    let statuses = app.sql_strings("SELECT status FROM tenants").await;
    assert!(statuses.iter().all(|s| s == "succeeded"), "{statuses:?}");
}

/// A run whose platform call does not answer even after the wait for it is
/// cut; the call may still land on the platform, so its tenant is not handed
/// back: its lease runs out as after a crash.
async fn tn4_a_run_cut_inside_a_platform_call_keeps_its_lease_until_it_runs_out(app: TestApp) {
    setup(&app, 1, 1).await;
    let gate = Gate::new();
    let lease = Duration::minutes(10);
    let config = ReplicationConfig {
        node: "cut".into(),
        lease,
        stop_grace: StdDuration::ZERO,
        stop_call_wait: StdDuration::from_millis(300),
        ..ReplicationConfig::default()
    };
    let rep = replicator(&app, &gate, config);
    let stop = CancellationToken::new();
    let running = tokio::spawn(rep.clone().run(stop.clone()));
    until("the grant", async || gate.started() == 1).await;
    let stopped = std::time::Instant::now();
    stop.cancel();
    tokio::time::timeout(StdDuration::from_secs(20), running).await.expect("run returned").unwrap();
    assert!(stopped.elapsed() < StdDuration::from_secs(10), "the stop is bounded: {:?}", stopped.elapsed());

    let leased_by = app.sql_strings("SELECT leased_by FROM tenant_work").await;
    assert!(leased_by.len() == 1 && leased_by[0].starts_with("cut/"), "{leased_by:?}");
    let now = app.clock.now();
    let claims = app.store.claim_tenants("next-node", now, now + lease, 10).await.unwrap();
    assert!(claims.is_empty(), "nobody works on a tenant whose call may still land");
    let later = now + lease + Duration::seconds(1);
    let claims = app.store.claim_tenants("next-node", later, later + lease, 10).await.unwrap();
    assert_eq!(claims.len(), 1, "taken up when the lease ran out");
}

/// Every loop of the engine returns promptly once its token is cancelled,
/// so a stopping node can wait for them.
async fn tn4_every_engine_loop_returns_once_told_to_stop(app: TestApp) {
    let stop = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let export = CheckpointExport { file: Some(dir.path().join("checkpoints.jsonl")), webhook: None };
    // an SMTP server that is not there: the outbox is empty anyway
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mailer = Mailer::new(&format!("smtp://127.0.0.1:{port}"), "canopy@test.example").unwrap();
    let rep = Arc::new(Replicator::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret_key.clone(),
        Adapters::default(),
        ReplicationConfig { node: "loops".into(), ..ReplicationConfig::default() },
    ));
    let clock: Arc<dyn Clock> = app.clock.clone();
    let hour = StdDuration::from_secs(3600);
    let loops = [
        ("replication", tokio::spawn(rep.run(stop.clone()))),
        ("expiry", tokio::spawn(canopy_engine::expiry::run(app.store.clone(), clock.clone(), stop.clone()))),
        ("payments", tokio::spawn(canopy_engine::payments::run(app.store.clone(), clock.clone(), stop.clone()))),
        (
            "checkpoints",
            tokio::spawn(canopy_engine::checkpoints::run(
                app.store.clone(),
                clock.clone(),
                app.history_key.clone(),
                export,
                hour,
                stop.clone(),
            )),
        ),
        ("mailer", tokio::spawn(canopy_engine::mailer::run(app.store.clone(), mailer, clock, hour, stop.clone()))),
    ];
    // each has done its first round and sleeps
    until("the first checkpoint export", async || dir.path().join("checkpoints.jsonl").exists()).await;
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    stop.cancel();
    for (name, task) in loops {
        tokio::time::timeout(StdDuration::from_secs(5), task)
            .await
            .unwrap_or_else(|_| panic!("the {name} loop still runs 5 s after the stop"))
            .unwrap();
    }
}

/// An SMTP server that holds each mail's final answer until the test lets it through.
struct Smtp {
    port: u16,
    /// Mails whose data arrived (and wait for their answer, or were answered).
    received: AtomicUsize,
    through: Semaphore,
}

impl Smtp {
    async fn start() -> Arc<Smtp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let smtp = Arc::new(Smtp { port, received: AtomicUsize::new(0), through: Semaphore::new(0) });
        let server = smtp.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server.clone().session(socket));
            }
        });
        smtp
    }

    async fn session(self: Arc<Self>, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "DATA" => {
                    let _ = write.write_all(b"354 go ahead\r\n").await;
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                    }
                    self.received.fetch_add(1, Ordering::SeqCst);
                    self.through.acquire().await.unwrap().forget();
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"250 ok\r\n",
            };
            if write.write_all(answer).await.is_err() {
                return;
            }
        }
    }
}

/// The mailer of a stopping node finishes the mail it is sending and takes
/// no other: those wait in the outbox, due, for the next sender.
async fn ws3_a_stopping_mailer_finishes_the_mail_in_progress_and_takes_no_other(app: TestApp) {
    let ann = app.user("ann").await;
    app.workspace(&ann, "ws").await;
    for who in ["dora", "eve", "fay"] {
        let email = format!("{who}@invited.example");
        app.post("/api/v1/workspaces/ws/members", &ann, json!({"email": email, "role": "workspace_member"}))
            .await
            .expect(201);
    }
    let smtp = Smtp::start().await;
    let mailer = Mailer::new(&format!("smtp://127.0.0.1:{}", smtp.port), "canopy@test.example").unwrap();
    let stop = CancellationToken::new();
    let clock: Arc<dyn Clock> = app.clock.clone();
    let sending = tokio::spawn(canopy_engine::mailer::run(
        app.store.clone(),
        mailer,
        clock,
        StdDuration::from_millis(50),
        stop.clone(),
    ));
    until("the first mail", async || smtp.received.load(Ordering::SeqCst) == 1).await;
    stop.cancel();
    smtp.through.add_permits(10);
    tokio::time::timeout(StdDuration::from_secs(10), sending).await.expect("the mailer returned").unwrap();

    assert_eq!(smtp.received.load(Ordering::SeqCst), 1, "no mail after the stop");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM outbox_mails WHERE sent_at IS NOT NULL").await, 1);
    let pending = app.store.pending_mails().await.unwrap();
    assert_eq!(pending.len(), 2);
    // never claimed: due now, for the next sender
    let now = app.clock.now();
    assert!(app.store.claim_mail(now, now + Duration::minutes(5)).await.unwrap().is_some());
}

canopy_testkit::backend_tests!(
    tn4_a_stopping_node_claims_nothing_more_and_lets_a_run_finish_within_the_grace_period,
    tn4_a_run_still_going_after_the_grace_period_stops_between_calls_and_hands_its_tenant_back,
    tn4_a_run_cut_inside_a_platform_call_keeps_its_lease_until_it_runs_out,
    tn4_every_engine_loop_returns_once_told_to_stop,
    ws3_a_stopping_mailer_finishes_the_mail_in_progress_and_takes_no_other,
);
