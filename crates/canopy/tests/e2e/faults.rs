//! Item 8 of the replication issue: replication converges on a real Keystone
//! behind a fault-injecting layer (30 % of calls fail as a 5xx would, 10 %
//! answer 429 with Retry-After, 5 % are applied but their answer is lost),
//! with no duplicate and no call before a Retry-After ran out.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_engine::replication::{Adapters, Connector, ReplicationConfig, Replicator};
use canopy_platforms::{AnyPlatform, Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use canopy_store::PlatformRecord;
use canopy_testkit::{ManualClock, TestApp};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::nodes::keystone_count;
use crate::tenants::{Os, unique};

#[derive(Default)]
struct Faults {
    calls: AtomicUsize,
    failed: AtomicUsize,
    throttled: AtomicUsize,
    lost: AtomicUsize,
    /// No call may start before this instant (the last Retry-After).
    not_before: Mutex<Option<OffsetDateTime>>,
    violations: Mutex<Vec<String>>,
}

struct FaultyConnector {
    inner: Adapters,
    faults: Arc<Faults>,
    clock: Arc<ManualClock>,
}

struct FaultyPlatform {
    inner: Arc<AnyPlatform>,
    faults: Arc<Faults>,
    clock: Arc<ManualClock>,
}

impl Connector for FaultyConnector {
    type Platform = FaultyPlatform;
    fn connect(&self, p: &PlatformRecord, secrets: &Map<String, Value>) -> Result<Arc<FaultyPlatform>, PlatformError> {
        Ok(Arc::new(FaultyPlatform {
            inner: self.inner.connect(p, secrets)?,
            faults: self.faults.clone(),
            clock: self.clock.clone(),
        }))
    }
}

enum Fate {
    Fail,
    Throttle,
    LoseAnswer,
    Pass,
}

impl FaultyPlatform {
    /// Check the call honours the last Retry-After, then draw its fate.
    fn fate(&self, what: &str) -> Fate {
        let now = self.clock.now();
        if let Some(nb) = *self.faults.not_before.lock().unwrap()
            && now < nb
        {
            self.faults.violations.lock().unwrap().push(format!("{what} at {now} before {nb}"));
        }
        self.faults.calls.fetch_add(1, Ordering::Relaxed);
        let roll = uuid::Uuid::new_v4().as_u128() % 100;
        match roll {
            0..30 => Fate::Fail,
            30..40 => Fate::Throttle,
            40..45 => Fate::LoseAnswer,
            _ => Fate::Pass,
        }
    }

    async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, PlatformError>>,
    ) -> Result<T, PlatformError> {
        match self.fate(what) {
            Fate::Fail => {
                self.faults.failed.fetch_add(1, Ordering::Relaxed);
                Err(PlatformError::Retryable {
                    message: "503 Service Unavailable (injected)".into(),
                    retry_after: None,
                })
            }
            Fate::Throttle => {
                self.faults.throttled.fetch_add(1, Ordering::Relaxed);
                let wait = StdDuration::from_secs(2);
                *self.faults.not_before.lock().unwrap() = Some(self.clock.now() + Duration::seconds(2));
                Err(PlatformError::Retryable {
                    message: "429 Too Many Requests (injected)".into(),
                    retry_after: Some(wait),
                })
            }
            Fate::LoseAnswer => {
                call.await?;
                self.faults.lost.fetch_add(1, Ordering::Relaxed);
                Err(PlatformError::Retryable {
                    message: "connection reset after the call (injected)".into(),
                    retry_after: None,
                })
            }
            Fate::Pass => call.await,
        }
    }
}

impl Platform for FaultyPlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        self.run("ensure_tenant", self.inner.ensure_tenant(spec)).await
    }
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        self.run("observe", self.inner.observe(tenant, scope)).await
    }
    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.run("grant", self.inner.grant(tenant, user, role)).await
    }
    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.run("revoke", self.inner.revoke(tenant, user, role)).await
    }
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        self.run("find_resources", self.inner.find_resources(tenant)).await
    }
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        self.run("delete_tenant", self.inner.delete_tenant(tenant)).await
    }
}

async fn tn4_replication_converges_through_injected_faults(app: TestApp) {
    let Some(os) = Os::get() else { return };
    let ws = unique("w");
    let platform = unique("os");
    app.workspace(&app.admin_token, &ws).await;
    app.post("/api/v1/platforms", &app.admin_token, os.platform(&platform, "Default")).await.expect(201);
    let users: Vec<String> = (0..6).map(|_| unique("u")).collect();
    for u in &users {
        app.user(u).await;
        app.invite(&app.admin_token, &ws, u, "workspace_member").await;
    }
    const PROJECTS: usize = 6;
    for i in 0..PROJECTS {
        let project = format!("p{i}");
        app.project(&app.admin_token, &ws, &project).await;
        let p = format!("/api/v1/workspaces/{ws}/projects/{project}");
        app.post(&format!("{p}/tenants"), &app.admin_token, json!({"platform": platform})).await.expect(201);
        for u in &users {
            app.post(&format!("{p}/bindings"), &app.admin_token, json!({"user": u, "role": "project_user"}))
                .await
                .expect(201);
        }
    }
    let faults = Arc::new(Faults::default());
    let connector = FaultyConnector { inner: Adapters::default(), faults: faults.clone(), clock: app.clock.clone() };
    // one tenant of a platform at a time, so "after the 429" is well defined
    let config = ReplicationConfig { node: "faulty".into(), per_platform: 1, ..ReplicationConfig::default() };
    let rep = Replicator::new(app.store.clone(), app.clock.clone(), app.secret_key.clone(), connector, config);
    let mut passes = 0;
    while app.store.tenant_backlog().await.unwrap() > 0 {
        passes += 1;
        assert!(passes < 3000, "not converged after {passes} passes");
        if rep.run_once().await.unwrap().tenants == 0 {
            app.clock.advance(Duration::seconds(30)); // nothing due: let the backoff run out
        }
    }
    let violations = faults.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "calls before Retry-After: {violations:?}");
    let (failed, throttled, lost) = (
        faults.failed.load(Ordering::Relaxed),
        faults.throttled.load(Ordering::Relaxed),
        faults.lost.load(Ordering::Relaxed),
    );
    assert!(
        failed > 0 && throttled > 0 && lost > 0,
        "faults were injected: {failed} 5xx, {throttled} 429, {lost} lost"
    );

    let want: BTreeSet<String> = users.iter().map(|u| format!("{u}:member")).collect();
    let ks = os.client();
    for i in 0..PROJECTS {
        let t = app.get(&format!("/api/v1/workspaces/{ws}/projects/p{i}/tenants/{platform}"), &app.admin_token).await;
        assert_eq!(t.body["status"], "succeeded", "{}", t.body);
        let ext = t.body["external_id"].as_str().unwrap().to_owned();
        let name = t.body["name"].as_str().unwrap().to_owned();
        let held: BTreeSet<String> = ks
            .observe(&TenantRef { external_id: ext }, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|h| format!("{}:{}", h.username, h.platform_role))
            .collect();
        assert_eq!(held, want);
        assert_eq!(keystone_count(&os, "projects", &name).await, 1, "project {name} exists once");
    }
    for u in &users {
        assert_eq!(keystone_count(&os, "users", u).await, 1, "account {u} exists once");
    }
}

/// A platform that holds everything in memory and, while `wait` is set,
/// answers every call with that Retry-After.
#[derive(Default)]
struct Waiting {
    wait: Mutex<Option<StdDuration>>,
    granted: Mutex<BTreeSet<Held>>,
}

struct WaitingConnector(Arc<Waiting>);

impl Connector for WaitingConnector {
    type Platform = WaitingPlatform;
    fn connect(&self, _: &PlatformRecord, _: &Map<String, Value>) -> Result<Arc<WaitingPlatform>, PlatformError> {
        Ok(Arc::new(WaitingPlatform(self.0.clone())))
    }
}

struct WaitingPlatform(Arc<Waiting>);

impl WaitingPlatform {
    fn answer(&self) -> Result<(), PlatformError> {
        match *self.0.wait.lock().unwrap() {
            Some(d) => {
                Err(PlatformError::Retryable { message: "429 (a hostile Retry-After)".into(), retry_after: Some(d) })
            }
            None => Ok(()),
        }
    }
}

impl Platform for WaitingPlatform {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        self.answer()?;
        Ok(TenantRef { external_id: spec.name.clone() })
    }
    async fn observe(&self, _: &TenantRef, _: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        self.answer()?;
        Ok(self.0.granted.lock().unwrap().clone())
    }
    async fn grant(&self, _: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.answer()?;
        let held = Held { username: user.username.clone(), platform_role: role.into() };
        self.0.granted.lock().unwrap().insert(held);
        Ok(())
    }
    async fn revoke(&self, _: &TenantRef, user: &PlatformUser, role: &str) -> Result<(), PlatformError> {
        self.answer()?;
        self.0.granted.lock().unwrap().retain(|h| !(h.username == user.username && h.platform_role == role));
        Ok(())
    }
    async fn find_resources(&self, _: &TenantRef) -> Result<Vec<String>, PlatformError> {
        self.answer()?;
        Ok(vec![])
    }
    async fn delete_tenant(&self, _: &TenantRef) -> Result<(), PlatformError> {
        self.answer()
    }
}

/// Issue 11, finding 5: `Retry-After: 9223372036854775807` once overflowed
/// `now + d` and panicked the run, and the tenant never replicated again.
async fn se5_a_hostile_retry_after_neither_panics_nor_parks_a_tenant(app: TestApp) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    app.project(&admin, "w", "web").await;
    app.user("ann").await;
    app.invite(&admin, "w", "ann", "workspace_member").await;
    let p = "/api/v1/workspaces/w/projects/web";
    unreachable_cloud_tenant(&app, &admin, p).await;
    app.post(&format!("{p}/bindings"), &admin, json!({"user": "ann", "role": "project_user"})).await.expect(201);

    let waiting = Arc::new(Waiting::default());
    let rep = Replicator::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret_key.clone(),
        WaitingConnector(waiting.clone()),
        ReplicationConfig { node: "hostile".into(), ..ReplicationConfig::default() },
    );
    for wait in [StdDuration::from_secs(i64::MAX as u64), StdDuration::MAX] {
        *waiting.wait.lock().unwrap() = Some(wait);
        let pass = rep.run_once().await.unwrap();
        assert_eq!((pass.tenants, pass.failed), (1, 1), "{pass:?}");
        let t = app.get(&format!("{p}/tenants/cloud"), &admin).await.expect(200);
        assert_eq!(t.body["status"], "failed", "{}", t.body);
        // the platform recovers; the wait it asked for is honoured, but only up to the cap
        *waiting.wait.lock().unwrap() = None;
        app.clock.advance(Duration::minutes(30));
        assert_eq!(rep.run_once().await.unwrap().succeeded, 0, "called again before the wait ran out");
        app.clock.advance(Duration::minutes(31));
        rep.run_until_idle().await.unwrap();
        let t = app.get(&format!("{p}/tenants/cloud"), &admin).await.expect(200);
        assert_eq!(t.body["status"], "succeeded", "{}", t.body);
        // dirty again for the next round
        app.post(&format!("{p}/tenants/cloud/replicate"), &admin, json!({})).await;
    }
    assert_eq!(waiting.granted.lock().unwrap().len(), 1);
}

/// SE5: a platform that reports a holder with an absurdly long name (or
/// absurdly many) fails the tenant with a clear message; nothing of it
/// reaches the store, the history or the plan.
async fn se5_a_hostile_observation_is_refused_not_stored(app: TestApp) {
    let admin = app.admin_token.clone();
    app.workspace(&admin, "w").await;
    app.project(&admin, "w", "web").await;
    let p = "/api/v1/workspaces/w/projects/web";
    unreachable_cloud_tenant(&app, &admin, p).await;
    let waiting = Arc::new(Waiting::default());
    let long = Held { username: "x".repeat(100_000), platform_role: "member".into() };
    waiting.granted.lock().unwrap().insert(long);
    let rep = Replicator::new(
        app.store.clone(),
        app.clock.clone(),
        app.secret_key.clone(),
        WaitingConnector(waiting.clone()),
        ReplicationConfig { node: "hostile".into(), ..ReplicationConfig::default() },
    );
    let pass = rep.run_once().await.unwrap();
    assert_eq!((pass.tenants, pass.failed), (1, 1), "{pass:?}");
    let t = app.get(&format!("{p}/tenants/cloud"), &admin).await.expect(200).body;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["last_error"].as_str().unwrap().contains("longer than 512 bytes"), "{t}");
    assert!(t.to_string().len() < 2_000, "the name is not kept: {} bytes", t.to_string().len());
    let h = app.get("/api/v1/workspaces/w/history", &admin).await.expect(200).body;
    assert!(!h.to_string().contains(&"x".repeat(600)), "the name reached the history");
}

canopy_testkit::backend_tests!(
    tn4_replication_converges_through_injected_faults,
    se5_a_hostile_retry_after_neither_panics_nor_parks_a_tenant,
    se5_a_hostile_observation_is_refused_not_stored
);

/// The platform `cloud` (OpenStack at an address nobody answers; the tests
/// put an in-process platform in its place) with a tenant of project `p`.
async fn unreachable_cloud_tenant(app: &TestApp, admin: &str, p: &str) {
    let platform = json!({"identifier": "cloud", "type": "openstack",
        "settings": {"auth_url": "http://127.0.0.1:9/v3", "domain": "Default"},
        "secrets": {"username": "admin", "password": "unused"},
        "role_mapping": {"project_user": "member"}});
    app.post("/api/v1/platforms", admin, platform).await.expect(201);
    app.post(&format!("{p}/tenants"), admin, json!({"platform": "cloud"})).await.expect(201);
}
