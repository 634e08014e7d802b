//! Replication (TN4, TN5): workers that make every dirty tenant hold exactly
//! the assignments Canopy's bindings give, level-triggered and crash-safe.
//!
//! A worker leases a dirty tenant ([`Store::claim_tenants`]), reads the
//! current state in one snapshot, computes the desired assignments in the
//! domain, observes what the platform holds, and applies the difference with
//! idempotent calls. It never replays events, so a crash at any point only
//! means the lease expires and the tenant is converged again.
//!
//! Grants are recorded as pending before the platform is called and
//! confirmed afterwards ([`Applied`](replication::Applied)), which lets the
//! domain tell Canopy's own changes from drift made outside it
//! ([`split_drift`]).
//!
//! A node that stops ([`Replicator::run`]'s token cancelled) claims nothing
//! more, gives up the scheduler, lets its runs finish for
//! [`ReplicationConfig::stop_grace`], then has the rest stop at their next
//! step between platform calls, record what the platform confirmed, and
//! hand their tenants back ([`Store::release_leases`]) still dirty, so
//! another node takes them up at once rather than when the leases run out.
//!
//! Urgent work (an emergency's revocations, [`Claim::is_urgent`]) waits
//! behind a run in flight for at most about one platform call: ordinary
//! runs yield to it the way a stopping node's runs stop. When urgent
//! tenants wait and every worker is busy, the node claims them at once and
//! asks as many ordinary runs to yield; an urgent run waiting for its
//! platform's turn asks an ordinary holder of one to yield
//! ([`crate::turns`]); a run whose tenant became urgent since it was
//! claimed yields too, and its tenant is claimed again as urgent. A run
//! that yields stops at its next step between platform calls, records what
//! the platform confirmed and hands its tenant back, still dirty, to be
//! taken up after the urgent work.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use canopy_domain::access::UserStatus;
use canopy_domain::clock::Clock;
use canopy_domain::deletion::TenantDeletion;
use canopy_domain::events::{
    ConfirmedRevocation, PlatformAssignment, TenantDeleted, TenantDriftDetected, TenantDriftRepaired, TenantReplicated,
    TenantReplicationFailed,
};
use canopy_domain::history::Initiator;
use canopy_domain::replication::{
    self, Assignment, DriftPolicy, Plan, desired_assignments, plan, platform_wait, retry_delay, split_drift,
};
use canopy_platforms::{AnyPlatform, Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};
use canopy_store::{Claim, Outcome, PlatformRecord, ReplicationInput, SecretKey, Store, StoreError};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::{EngineMetrics, Operation};
use crate::turns::Turns;

/// The name replication's history events carry as their initiator.
pub const JOB: &str = "replication";

/// While runs are in flight, a node claims at most once in this time,
/// taking every slot freed meanwhile at once: on SQLite each claim is a
/// commit on the single writer, and runs that end one by one would
/// otherwise each cost one (B2). A slot waits at most this long.
const CLAIM_COOLDOWN: StdDuration = StdDuration::from_millis(5);

/// How often the node that runs the scheduler marks tenants for the
/// periodic reconcile.
pub const SCHEDULER_TICK: StdDuration = StdDuration::from_secs(10);

/// How many tenants one scheduler tick marks for the periodic reconcile:
/// at least `floor`, and enough that all `tenants` come up within `every`
/// with a quarter to spare (for ticks that come late). A fixed batch would
/// not: 100 per 10 s reaches 36,000 tenants an hour, and an installation of
/// a million bindings in projects of 20 has 50,000 (B6).
pub fn reconcile_batch(tenants: u64, tick: StdDuration, every: Duration, floor: u32) -> u32 {
    let tick_ms = u64::try_from(tick.as_millis()).unwrap_or(u64::MAX).max(1);
    let every_ms = u64::try_from(every.whole_milliseconds()).unwrap_or(0);
    let ticks = (every_ms / tick_ms).max(1);
    let needed = tenants.saturating_mul(5).div_ceil(ticks.saturating_mul(4));
    u32::try_from(needed).unwrap_or(u32::MAX).max(floor)
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such tenant")]
    NoTenant,
    #[error("a replication run is working on this tenant; try again in a moment")]
    Busy,
    #[error("{0}")]
    Platform(PlatformError),
}

/// Makes the adapter for a registered platform. The engine asks for one per
/// tenant run; implementations cache connections (and their tokens).
pub trait Connector: Send + Sync + 'static {
    type Platform: Platform + 'static;
    fn connect(
        &self,
        platform: &PlatformRecord,
        secrets: &Map<String, Value>,
    ) -> Result<Arc<Self::Platform>, PlatformError>;
}

/// The real adapters of `canopy-platforms`, one connection per platform,
/// made again when the platform's settings or secrets change.
#[derive(Default)]
pub struct Adapters {
    cache: Mutex<HashMap<Uuid, (String, Arc<AnyPlatform>)>>,
}

impl Connector for Adapters {
    type Platform = AnyPlatform;

    fn connect(
        &self,
        platform: &PlatformRecord,
        secrets: &Map<String, Value>,
    ) -> Result<Arc<AnyPlatform>, PlatformError> {
        let fingerprint = format!("{}{}", Value::Object(platform.settings.clone()), Value::Object(secrets.clone()));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, p)) = cache.get(&platform.id)
            && *f == fingerprint
        {
            return Ok(p.clone());
        }
        let p = Arc::new(canopy_platforms::connect(platform.platform_type, &platform.settings, secrets)?);
        cache.insert(platform.id, (fingerprint, p.clone()));
        Ok(p)
    }
}

/// How the workers run.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// This node's name in leases (unique per process).
    pub node: String,
    /// How long a leased tenant stays reserved without a heartbeat.
    pub lease: Duration,
    /// Tenants worked on at once by this node.
    pub workers: usize,
    /// Tenants of one platform worked on at once by this node, urgent
    /// tenants included (they are served first).
    pub per_platform: usize,
    /// How often an idle worker looks for work, and a busy node for urgent
    /// work it should make way for (urgent work marked by this process is
    /// seen at once).
    pub poll: StdDuration,
    /// A tenant not reconciled for this long is marked dirty (TN4 drift repair).
    pub reconcile_every: Duration,
    /// The fewest tenants marked per scheduler tick for the periodic
    /// reconcile; more when the installation needs more to reconcile every
    /// tenant within `reconcile_every` ([`reconcile_batch`]). A full
    /// reconcile runs at a bounded rate either way.
    pub reconcile_batch: u32,
    /// When the node stops, how long runs in progress get to finish before
    /// they are told to stop at their next step between platform calls.
    pub stop_grace: StdDuration,
    /// After `stop_grace`, how long a run gets to finish the platform call
    /// it is in; one still inside a call then is cut, and its lease is left
    /// to run out as after a crash (the call may still land on the platform).
    pub stop_call_wait: StdDuration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            node: format!("node-{}", Uuid::new_v4().simple()),
            lease: Duration::minutes(2),
            workers: 16,
            per_platform: 4,
            poll: StdDuration::from_millis(500),
            reconcile_every: Duration::hours(1),
            reconcile_batch: 100,
            stop_grace: StdDuration::from_secs(10),
            stop_call_wait: StdDuration::from_secs(5),
        }
    }
}

/// What one run on one tenant did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRun {
    pub granted: usize,
    pub revoked: usize,
    pub drift: usize,
    pub failed: Option<String>,
    /// The node was stopping, or the run yielded to urgent work: it stopped
    /// between two platform calls, recorded what the platform confirmed,
    /// and handed the tenant back still dirty.
    pub abandoned: bool,
}

/// What [`Replicator::run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub tenants: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub granted: usize,
    pub revoked: usize,
}

pub use canopy_app::platforms::{Preview, Withdrawal};

/// The replication workers of one node.
pub struct Replicator<K: Connector = Adapters> {
    store: Store,
    clock: Arc<dyn Clock>,
    key: SecretKey,
    connector: K,
    config: ReplicationConfig,
    /// Per-platform turns of this node (concurrency limits, urgent first).
    limits: Mutex<HashMap<Uuid, Arc<Turns>>>,
    /// A platform that answered 429 is not called again before this instant.
    throttled: Mutex<HashMap<Uuid, OffsetDateTime>>,
    /// Leases this node's runs hold, (tenant, claim token), renewed by the heartbeat.
    leased: Mutex<BTreeSet<(Uuid, String)>>,
    /// Platform calls and runs in flight, for `GET /metrics`.
    metrics: EngineMetrics,
    /// Ordinary runs [`Replicator::run`] asked to yield to urgent work.
    yields: AtomicU64,
}

/// The platform roles Canopy manages in a tenant (the domain's `managed_roles`).
fn managed_roles(input: &ReplicationInput) -> BTreeSet<String> {
    replication::managed_roles(&input.role_mapping, &input.applied)
}

/// The most assignments one tenant's observation may report, and the
/// longest account or role name in one: a platform's answer is outside
/// input, and it goes into the store and the history (SE5).
const MAX_OBSERVED: usize = 100_000;
const MAX_OBSERVED_NAME: usize = 512;

/// What a platform reported a tenant holds, refused when it is beyond
/// [`MAX_OBSERVED`] or names something longer than [`MAX_OBSERVED_NAME`].
fn observed(held: BTreeSet<Held>) -> Result<BTreeSet<Assignment<String>>, PlatformError> {
    if held.len() > MAX_OBSERVED {
        return Err(PlatformError::Permanent {
            message: format!("the platform reports {} assignments in one tenant (at most {MAX_OBSERVED})", held.len()),
        });
    }
    if let Some(h) =
        held.iter().find(|h| h.username.len() > MAX_OBSERVED_NAME || h.platform_role.len() > MAX_OBSERVED_NAME)
    {
        let start: String = h.username.chars().chain(h.platform_role.chars()).take(40).collect();
        return Err(PlatformError::Permanent {
            message: format!("the platform reports a name longer than {MAX_OBSERVED_NAME} bytes ({start}...)"),
        });
    }
    Ok(held.into_iter().map(|h| Assignment { user: h.username, platform_role: h.platform_role }).collect())
}

/// What Canopy manages in a tenant that should hold `desired` (the
/// domain's `managed`), as the platform is asked about it.
fn scope(desired: &BTreeSet<Assignment<String>>, input: &ReplicationInput) -> Scope {
    let managed = replication::managed(desired, &input.role_mapping, &input.applied);
    Scope {
        assignments: managed
            .assignments
            .into_iter()
            .map(|a| Held { username: a.user, platform_role: a.platform_role })
            .collect(),
        roles: managed.roles,
        people: input.accounts.iter().map(|a| (a.username.clone(), a.email.clone())).collect(),
    }
}

/// The e-mail addresses of the people Canopy knows in a tenant, by username.
fn emails(input: &ReplicationInput) -> BTreeMap<&str, &str> {
    input.accounts.iter().map(|a| (a.username.as_str(), a.email.as_str())).collect()
}

/// The platform account of `username` as the adapters name it: with the
/// e-mail address of the person Canopy knows by that name, else (a holder
/// the platform named) none.
fn platform_user(emails: &BTreeMap<&str, &str>, username: &str) -> PlatformUser {
    let email = emails.get(username).map(|e| e.to_string());
    PlatformUser { username: username.to_owned(), email: email.unwrap_or_default() }
}

fn names(list: &[Assignment<String>]) -> Vec<PlatformAssignment> {
    list.iter().map(PlatformAssignment::from).collect()
}

impl<K: Connector> Replicator<K> {
    pub fn new(store: Store, clock: Arc<dyn Clock>, key: SecretKey, connector: K, config: ReplicationConfig) -> Self {
        Replicator {
            store,
            clock,
            key,
            connector,
            config,
            limits: Mutex::default(),
            throttled: Mutex::default(),
            leased: Mutex::default(),
            metrics: EngineMetrics::default(),
            yields: AtomicU64::new(0),
        }
    }

    /// How many times this node asked an ordinary run to yield to urgent
    /// work so far: for an urgent tenant waiting for a worker or for its
    /// platform's turn, or because the run's own tenant became urgent.
    pub fn yields_asked(&self) -> u64 {
        let limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        self.yields.load(Ordering::Relaxed) + limits.values().map(|t| t.asked()).sum::<u64>()
    }

    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// This replicator's instruments, to register where `GET /metrics` reads.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// Take one batch of due tenants and converge each, concurrently; answers
    /// when all are done. Tests call this with a settable clock.
    pub async fn run_once(&self) -> Result<Pass, ReplicationError> {
        let now = self.clock.now();
        let claims = self
            .store
            .claim_tenants(&self.config.node, now, now + self.config.lease, self.config.workers as u32)
            .await?;
        // nothing stops a single pass: its runs go to their end
        let never = CancellationToken::new();
        let runs = futures::future::join_all(claims.iter().map(|c| self.work(c.clone(), &never, &never))).await;
        let mut pass = Pass { tenants: claims.len(), ..Pass::default() };
        for run in runs {
            let run = run?;
            pass.granted += run.granted;
            pass.revoked += run.revoked;
            if run.failed.is_some() {
                pass.failed += 1;
            } else {
                pass.succeeded += 1;
            }
        }
        Ok(pass)
    }

    /// Run passes until no tenant is due now (for tests and the CLI's wait).
    pub async fn run_until_idle(&self) -> Result<Pass, ReplicationError> {
        let mut total = Pass::default();
        loop {
            let pass = self.run_once().await?;
            if pass.tenants == 0 {
                return Ok(total);
            }
            total.tenants += pass.tenants;
            total.succeeded += pass.succeeded;
            total.failed += pass.failed;
            total.granted += pass.granted;
            total.revoked += pass.revoked;
        }
    }

    /// Converge one leased tenant and settle its work row. Once `halt` is
    /// cancelled (the node stops: `stopping`, or the run is to yield to
    /// urgent work) the run stops at its next step between platform calls,
    /// leaves the work row dirty as it is, and hands its lease back.
    async fn work(
        &self,
        claim: Claim,
        halt: &CancellationToken,
        stopping: &CancellationToken,
    ) -> Result<TenantRun, ReplicationError> {
        // the heartbeat renews the lease only while this run lives, even if it panics
        let _in_flight = self.metrics.run_started();
        let lease = LeaseGuard::new(&self.leased, (claim.tenant_id, claim.token.clone()));
        let result = self.converge(&claim, halt).await;
        drop(lease);
        match result {
            // a run that converged ended its work row in the transaction that
            // settled it; one that found its tenant gone has no row left
            Ok(run) => Ok(run),
            Err(Failure::Abandoned) => {
                // no call of this run is under way: another node may start on the tenant now
                self.store.release_leases(&[(claim.tenant_id, claim.token.clone())]).await?;
                if stopping.is_cancelled() {
                    tracing::info!(tenant = %claim.tenant_id, "replication run stopped for the node's shutdown; tenant handed back");
                } else {
                    tracing::info!(tenant = %claim.tenant_id, "replication run yielded to urgent work; tenant handed back");
                }
                Ok(TenantRun { abandoned: true, ..TenantRun::default() })
            }
            Err(Failure::Platform(platform_id, e)) => {
                let now = self.clock.now();
                let attempts = claim.attempts + 1;
                let (due, not_before) = match &e {
                    PlatformError::Retryable { retry_after, .. } => {
                        // a platform's wait is outside input: capped, and added without overflow
                        let retry_after = retry_after.map(platform_wait);
                        let not_before = now.saturating_add(retry_after.unwrap_or(Duration::ZERO));
                        if let (Some(id), Some(_)) = (platform_id, retry_after) {
                            self.throttle(id, not_before);
                        }
                        (Some(now.saturating_add(retry_delay(attempts, retry_after))), not_before)
                    }
                    PlatformError::Permanent { .. } => (None, now),
                };
                tracing::warn!(tenant = %claim.tenant_id, attempts, error = %e, "replication failed");
                self.store.fail_tenant_work(&claim, due, not_before).await?;
                Ok(TenantRun { failed: Some(e.to_string()), ..TenantRun::default() })
            }
            Err(Failure::Store(e)) => {
                // the database failed: let the lease expire and try again then
                tracing::error!(tenant = %claim.tenant_id, error = %e, "replication could not read or write its state");
                Err(e.into())
            }
        }
    }

    fn throttle(&self, platform_id: Uuid, until: OffsetDateTime) {
        let mut t = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        let entry = t.entry(platform_id).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// Fail fast, without calling, while a platform's Retry-After runs.
    fn check_throttle(&self, platform_id: Uuid) -> Result<(), PlatformError> {
        let now = self.clock.now();
        let t = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        match t.get(&platform_id) {
            Some(until) if *until > now => Err(PlatformError::Retryable {
                message: "the platform asked Canopy to wait (Retry-After)".into(),
                retry_after: StdDuration::try_from(*until - now).ok(),
            }),
            _ => Ok(()),
        }
    }

    fn turns(&self, platform_id: Uuid) -> Arc<Turns> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits.entry(platform_id).or_insert_with(|| Turns::new(self.config.per_platform)).clone()
    }

    /// Call the platform, unless it asked to wait; a 429 throttles the
    /// platform. Every call made is measured (`GET /metrics`), by the
    /// platform's type, the operation and its outcome.
    async fn call<T>(
        &self,
        platform: &PlatformRecord,
        operation: Operation,
        fut: impl Future<Output = Result<T, PlatformError>>,
    ) -> Result<T, PlatformError> {
        self.check_throttle(platform.id)?;
        let started = std::time::Instant::now();
        let out = fut.await;
        self.metrics.call(platform.platform_type, operation, started.elapsed().as_secs_f64(), &out);
        if let Err(PlatformError::Retryable { retry_after: Some(d), .. }) = &out {
            self.throttle(platform.id, self.clock.now().saturating_add(platform_wait(*d)));
        }
        out
    }

    /// Read the state, connect to the platform, and compute the plan.
    /// A tenant's state and a connection to its platform, for what asks the
    /// platform without replicating (the plan, a deletion's resource check).
    async fn prepare(&self, tenant_id: Uuid) -> Result<Prepared<K::Platform>, ReplicationError> {
        let (input, adapter) = match self.connect(tenant_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(ReplicationError::NoTenant),
            Err(e) => return Err(e.into()),
        };
        Ok(Prepared { adapter: adapter.map_err(ReplicationError::Platform)?, input })
    }

    /// Read a tenant's state and connect to its platform; a platform that
    /// cannot be connected to is answered with the state, so it is recorded.
    async fn connect(&self, tenant_id: Uuid) -> Result<Option<Connected<K::Platform>>, StoreError> {
        let mut tx = self.store.read().await?;
        let Some(input) = tx.replication_input(tenant_id).await? else { return Ok(None) };
        let secrets = tx.platform_secrets(input.platform.id, &self.key).await?;
        drop(tx);
        let adapter = self.connector.connect(&input.platform, &secrets);
        Ok(Some((input, adapter)))
    }

    fn desired(&self, input: &ReplicationInput, at: OffsetDateTime) -> BTreeSet<Assignment<String>> {
        let statuses: Vec<UserStatus> =
            input.accounts.iter().map(|a| UserStatus { id: a.id, active: a.active }).collect();
        let usernames: BTreeMap<Uuid, &str> = input.accounts.iter().map(|a| (a.id, a.username.as_str())).collect();
        desired_assignments(&input.bindings, &input.group_members, &statuses, &input.role_mapping, at)
            .into_iter()
            .filter_map(|a| {
                Some(Assignment { user: usernames.get(&a.user)?.to_string(), platform_role: a.platform_role })
            })
            .collect()
    }

    /// What replication would change in a tenant now (the plan endpoint).
    pub async fn preview(&self, tenant_id: Uuid) -> Result<Preview, ReplicationError> {
        let Prepared { adapter, input } = self.prepare(tenant_id).await?;
        let desired = self.desired(&input, self.clock.now());
        let actual = match &input.tenant.external_id {
            None => BTreeSet::new(),
            Some(id) => {
                let tenant = TenantRef { external_id: id.clone() };
                self.call(&input.platform, Operation::Observe, adapter.observe(&tenant, &scope(&desired, &input)))
                    .await
                    .and_then(observed)
                    .map_err(ReplicationError::Platform)?
            }
        };
        let managed = managed_roles(&input);
        let (changes, drift) = split_drift(plan(&desired, &actual, &managed), &input.applied);
        Ok(Preview { desired, actual, changes, drift, drift_policy: input.platform.drift_policy })
    }

    async fn converge(&self, claim: &Claim, abandon: &CancellationToken) -> Result<TenantRun, Failure> {
        if abandon.is_cancelled() {
            return Err(Failure::Abandoned);
        }
        let Some((input, adapter)) = self.connect(claim.tenant_id).await? else {
            return Ok(TenantRun::default()); // the tenant is gone
        };
        let adapter = match adapter {
            Ok(a) => a,
            Err(e) => {
                // e.g. settings an adapter cannot use: the tenant shows why
                self.settle(claim, &input, &Progress::default(), Ending::Failed(&e)).await?;
                return Err(Failure::Platform(Some(input.platform.id), e));
            }
        };
        let platform_id = input.platform.id;
        // waiting for the platform's turn is no step of the run: a run told
        // to stop or yield stops waiting; urgent runs are served first, and
        // one that waits asks an ordinary holder to yield (`abandon` is how
        // this run is asked)
        let turns = self.turns(platform_id);
        let _turn = tokio::select! {
            biased;
            () = abandon.cancelled() => return Err(Failure::Abandoned),
            turn = turns.take(claim.is_urgent(), abandon) => turn,
        };
        if input.tenant.deletion == Some(TenantDeletion::Deleting) {
            return self.delete(claim, &adapter, &input, abandon).await;
        }
        let mut progress = Progress::default();
        let result = self.apply(claim, &adapter, &input, &mut progress, abandon).await;
        let ending = match &result {
            Ok(()) => Ending::Done,
            Err(Halt::Failed(e)) => Ending::Failed(e),
            Err(Halt::Abandoned) => Ending::Abandoned,
        };
        self.settle(claim, &input, &progress, ending).await?;
        match result {
            Ok(()) => {}
            Err(Halt::Failed(e)) => return Err(Failure::Platform(Some(platform_id), e)),
            Err(Halt::Abandoned) => return Err(Failure::Abandoned),
        }
        Ok(TenantRun {
            granted: progress.granted.len(),
            revoked: progress.revoked.len(),
            drift: progress.drift_found.grant.len() + progress.drift_found.revoke.len(),
            failed: None,
            abandoned: false,
        })
    }

    /// Delete a tenant whose deletion was confirmed (DL2), then settle its
    /// project: gone when this was its last tenant (DL1).
    async fn delete(
        &self,
        claim: &Claim,
        adapter: &K::Platform,
        input: &ReplicationInput,
        abandon: &CancellationToken,
    ) -> Result<TenantRun, Failure> {
        let platform_id = input.platform.id;
        if abandon.is_cancelled() {
            return Err(Failure::Abandoned);
        }
        if let Some(id) = &input.tenant.external_id {
            let tenant = TenantRef { external_id: id.clone() };
            if let Err(e) = self.call(&input.platform, Operation::DeleteTenant, adapter.delete_tenant(&tenant)).await {
                self.settle(claim, input, &Progress::default(), Ending::Failed(&e)).await?;
                return Err(Failure::Platform(Some(platform_id), e));
            }
        }
        let now = self.clock.now();
        let system = Initiator::system(JOB);
        let mut tx = self.store.write().await?;
        tx.lock_project_tenants(input.tenant.project_id).await?;
        tx.delete_tenant(input.tenant.id).await?;
        let deleted = TenantDeleted {
            project: input.project.clone(),
            platform: input.tenant.platform.clone(),
            external_id: input.tenant.external_id.clone(),
            node: Some(self.config.node.clone()),
            by_hand: false,
            revoked: None,
            platform_error: None,
        };
        tx.record(Some(input.workspace_id), now, &system, deleted.into())?;
        crate::deletion::settle_project(&mut tx, input.tenant.project_id, &system, now).await?;
        tx.commit().await?;
        Ok(TenantRun::default())
    }

    /// Revoke every assignment Canopy manages in a tenant, now, before its
    /// record goes (a tenant deleted by hand may still be alive: an account
    /// that was never closed keeps its people otherwise). What the platform
    /// confirmed is returned with its instant; a platform that cannot be
    /// reached or refuses is reported, not retried: the engineer's
    /// confirmation stands either way.
    pub async fn withdraw_everything(&self, tenant_id: Uuid) -> Result<(Withdrawal, Claim), ReplicationError> {
        // the tenant's lease first, so that no run grants behind the revocations
        let now = self.clock.now();
        let claim = self
            .store
            .hold_tenant(tenant_id, &self.config.node, now, now.saturating_add(self.config.lease))
            .await?
            .ok_or(ReplicationError::Busy)?;
        match self.withdraw(tenant_id).await {
            Ok(w) => Ok((w, claim)),
            Err(e) => {
                self.store.release_tenant(&claim).await?;
                Err(e)
            }
        }
    }

    /// Give back the lease of [`Replicator::withdraw_everything`] when the
    /// tenant stays after all.
    pub async fn release(&self, claim: &Claim) -> Result<(), ReplicationError> {
        Ok(self.store.release_tenant(claim).await?)
    }

    async fn withdraw(&self, tenant_id: Uuid) -> Result<Withdrawal, ReplicationError> {
        let Prepared { adapter, input } = match self.prepare(tenant_id).await {
            Ok(p) => p,
            Err(ReplicationError::Platform(e)) => {
                return Ok(Withdrawal { revoked: vec![], failed: Some(e.to_string()) });
            }
            Err(e) => return Err(e),
        };
        let Some(id) = &input.tenant.external_id else { return Ok(Withdrawal::default()) };
        let tenant = TenantRef { external_id: id.clone() };
        let nobody = BTreeSet::new();
        let held = match self
            .call(&input.platform, Operation::Observe, adapter.observe(&tenant, &scope(&nobody, &input)))
            .await
            .and_then(observed)
        {
            Ok(h) => h,
            Err(e) => return Ok(Withdrawal { revoked: vec![], failed: Some(e.to_string()) }),
        };
        // the domain decides: nobody is to hold a managed role there any more
        let revoke = plan(&nobody, &held, &managed_roles(&input)).revoke;
        let mut out = Withdrawal::default();
        let known = emails(&input);
        for a in revoke {
            let user = platform_user(&known, &a.user);
            match self.call(&input.platform, Operation::Revoke, adapter.revoke(&tenant, &user, &a.platform_role)).await
            {
                Ok(()) => out.revoked.push((a, self.clock.now())),
                Err(e) => {
                    out.failed = Some(format!("revoking {} {}: {e}", a.user, a.platform_role));
                    break;
                }
            }
        }
        Ok(out)
    }

    /// What a tenant still holds that deleting it would destroy (DL2).
    pub async fn find_resources(&self, tenant_id: Uuid) -> Result<Vec<String>, ReplicationError> {
        let Prepared { adapter, input } = self.prepare(tenant_id).await?;
        match &input.tenant.external_id {
            None => Ok(Vec::new()), // never created on the platform
            Some(id) => {
                let tenant = TenantRef { external_id: id.clone() };
                self.call(&input.platform, Operation::FindResources, adapter.find_resources(&tenant))
                    .await
                    .map_err(ReplicationError::Platform)
            }
        }
    }

    /// The platform calls of one run. What succeeded is kept in `progress`
    /// even when a later call fails, so it is recorded either way. Before
    /// each call the run looks at `abandon`: a stopping node's run ends
    /// there, never inside a call.
    async fn apply(
        &self,
        claim: &Claim,
        adapter: &K::Platform,
        input: &ReplicationInput,
        progress: &mut Progress,
        abandon: &CancellationToken,
    ) -> Result<(), Halt> {
        let next_step = || if abandon.is_cancelled() { Err(Halt::Abandoned) } else { Ok(()) };
        let tenant = match &input.tenant.external_id {
            Some(id) => TenantRef { external_id: id.clone() },
            None => {
                next_step()?;
                let spec = TenantSpec {
                    name: input.tenant.name.clone(),
                    description: format!("Canopy tenant {}", input.tenant.name),
                    landing_zone: input.landing_zone_settings.clone().unwrap_or_default(),
                };
                let t = self.call(&input.platform, Operation::EnsureTenant, adapter.ensure_tenant(&spec)).await?;
                progress.created = Some(t.external_id.clone());
                let mut tx = self.store.write().await.map_err(store_failed)?;
                tx.set_tenant_external_id(claim.tenant_id, &t.external_id).await.map_err(store_failed)?;
                tx.commit().await.map_err(store_failed)?;
                t
            }
        };
        // desired is computed after the platform answered, from the state read before:
        // a change made meanwhile bumped the generation, so the tenant runs again
        let desired = self.desired(input, self.clock.now());
        next_step()?;
        let actual = self
            .call(&input.platform, Operation::Observe, adapter.observe(&tenant, &scope(&desired, input)))
            .await
            .and_then(observed)?;
        // bookkeeping left by a crash (grants the platform confirmed,
        // revocations it did), and what the platform held already that a
        // binding now gives, adopted as Canopy's: the domain decides
        let books = replication::bookkeeping(&desired, &actual, &input.applied);
        progress.confirmed.extend(books.confirmed);
        progress.revoked.extend(books.revoked);
        progress.confirmed.extend(books.adopted);
        let managed = managed_roles(input);
        let (changes, drift) = split_drift(plan(&desired, &actual, &managed), &input.applied);
        progress.drift_found = drift.clone();
        let mut todo = changes;
        if input.platform.drift_policy == DriftPolicy::Repair {
            todo.grant.extend(drift.grant);
            todo.revoke.extend(drift.revoke);
        }
        let known = emails(input);
        for a in &todo.revoke {
            next_step()?;
            let user = platform_user(&known, &a.user);
            self.call(&input.platform, Operation::Revoke, adapter.revoke(&tenant, &user, &a.platform_role)).await?;
            progress.revoked.push(a.clone());
        }
        next_step()?;
        if !todo.grant.is_empty() {
            let mut tx = self.store.write().await.map_err(store_failed)?;
            for a in &todo.grant {
                tx.record_grant_intent(claim.tenant_id, a).await.map_err(store_failed)?;
            }
            tx.commit().await.map_err(store_failed)?;
        }
        for a in &todo.grant {
            next_step()?;
            let user = platform_user(&known, &a.user);
            self.call(&input.platform, Operation::Grant, adapter.grant(&tenant, &user, &a.platform_role)).await?;
            progress.granted.push(a.clone());
        }
        Ok(())
    }

    /// Record a run in one transaction: what the platform confirmed, the
    /// tenant's status, the history events and, for a run that converged,
    /// the end of its work row (finished unless a newer change marked the
    /// tenant meanwhile). An abandoned run records
    /// what the platform confirmed and leaves the status and the drift to
    /// the run that takes the tenant up.
    async fn settle(
        &self,
        claim: &Claim,
        input: &ReplicationInput,
        progress: &Progress,
        ending: Ending<'_>,
    ) -> Result<(), Failure> {
        if matches!(ending, Ending::Abandoned) && progress.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let tenant_id = input.tenant.id;
        let ws = Some(input.workspace_id);
        let system = Initiator::system(JOB);
        let (project, platform, node) =
            (input.project.clone(), input.tenant.platform.clone(), self.config.node.clone());
        let mut tx = self.store.write().await?;
        tx.lock_project_tenants(input.tenant.project_id).await?;
        for a in progress.granted.iter().chain(&progress.confirmed) {
            tx.confirm_grant(tenant_id, a, now).await?;
        }
        for a in &progress.revoked {
            tx.confirm_revocation(tenant_id, a, now).await?;
        }
        let drift = &progress.drift_found;
        let is_drift_grant = |a: &Assignment<String>| drift.grant.contains(a);
        let is_drift_revoke = |a: &Assignment<String>| drift.revoke.contains(a);
        let (repaired_grants, granted): (Vec<_>, Vec<_>) = progress.granted.iter().cloned().partition(is_drift_grant);
        let (repaired_revokes, revoked): (Vec<_>, Vec<_>) = progress.revoked.iter().cloned().partition(is_drift_revoke);
        if progress.created.is_some() || !granted.is_empty() || !revoked.is_empty() {
            let replicated = TenantReplicated {
                project: project.clone(),
                platform: platform.clone(),
                node: node.clone(),
                external_id: progress.created.clone().or_else(|| input.tenant.external_id.clone()),
                created: progress.created.is_some(),
                granted: names(&granted),
                revoked: revoked
                    .iter()
                    .map(|a| ConfirmedRevocation {
                        account: a.user.clone(),
                        platform_role: a.platform_role.clone(),
                        confirmed_at: now,
                    })
                    .collect(),
            };
            tx.record(ws, now, &system, replicated.into())?;
        }
        if !repaired_grants.is_empty() || !repaired_revokes.is_empty() {
            let repaired = TenantDriftRepaired {
                project: project.clone(),
                platform: platform.clone(),
                node: node.clone(),
                restored: names(&repaired_grants),
                removed: names(&repaired_revokes),
            };
            tx.record(ws, now, &system, repaired.into())?;
        }
        // an abandoned run's drift is found and reported again by the next run
        if input.platform.drift_policy == DriftPolicy::Report
            && !drift.is_empty()
            && !matches!(ending, Ending::Abandoned)
        {
            let detected = TenantDriftDetected {
                project: project.clone(),
                platform: platform.clone(),
                node: node.clone(),
                missing: names(&drift.grant),
                unexpected: names(&drift.revoke),
            };
            tx.record(ws, now, &system, detected.into())?;
        }
        match ending {
            Ending::Abandoned => {}
            Ending::Done => {
                tx.set_tenant_outcome(tenant_id, Outcome::Succeeded, now).await?;
                // the work row ends with the outcome: one commit per run
                tx.finish_tenant_work(claim).await?;
            }
            Ending::Failed(e) => {
                let message = e.to_string();
                // one event per distinct failure, not one per retry
                if input.tenant.last_error.as_deref() != Some(message.as_str()) {
                    let failed = TenantReplicationFailed {
                        project,
                        platform,
                        node,
                        error: message.clone(),
                        retryable: matches!(e, PlatformError::Retryable { .. }),
                    };
                    tx.record(ws, now, &system, failed.into())?;
                }
                tx.set_tenant_outcome(tenant_id, Outcome::Failed { error: &message }, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Renew the leases of the tenants this node works on.
    pub async fn heartbeat(&self) -> Result<(), ReplicationError> {
        let leased: Vec<(Uuid, String)> =
            self.leased.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        if !leased.is_empty() {
            let until = self.clock.now() + self.config.lease;
            self.store.renew_leases(&leased, until).await?;
        }
        Ok(())
    }

    /// One scheduler step of the periodic full reconcile: mark dirty a
    /// bounded batch of the tenants not reconciled for `reconcile_every`,
    /// as many as reconcile every tenant within that period
    /// ([`reconcile_batch`]).
    pub async fn schedule_reconcile(&self) -> Result<u64, ReplicationError> {
        let now = self.clock.now();
        let older_than = now - self.config.reconcile_every;
        let tenants = self.store.tenant_count().await?;
        let c = &self.config;
        let batch = reconcile_batch(tenants, SCHEDULER_TICK, c.reconcile_every, c.reconcile_batch);
        Ok(self.store.mark_for_reconcile(older_than, batch, now).await?)
    }

    /// Work dirty tenants until `stop` is cancelled: keep up to `workers`
    /// tenants in flight, take more as slots free up, renew leases, and
    /// schedule the periodic reconcile.
    ///
    /// Once `stop` is cancelled: claim nothing more and give the scheduler
    /// up; let the runs in progress finish for
    /// [`ReplicationConfig::stop_grace`]; then tell the rest to stop at
    /// their next step between platform calls, waiting at most
    /// [`ReplicationConfig::stop_call_wait`] for the call each is in (one
    /// still inside a call then is cut, and its lease runs out as after a
    /// crash). Each run that stops so hands its lease back at once, and so
    /// does each run that returns an error meanwhile; then this returns.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        // owned by this loop: it ends with it, after the last run
        let mut heartbeat = JoinSet::new();
        let heart = self.clone();
        heartbeat.spawn(async move {
            let every = StdDuration::try_from(heart.config.lease / 3).unwrap_or(StdDuration::from_secs(20));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = heart.heartbeat().await {
                    tracing::error!(error = %e, "could not renew replication leases");
                }
            }
        });
        let abandon = CancellationToken::new();
        let mut runs = Runs::default();
        let mut last_schedule = None::<std::time::Instant>;
        let mut last_urgent_look = std::time::Instant::now();
        let mut last_claim = None::<tokio::time::Instant>;
        let mut urgent_marked = false;
        let mut leadership = None;
        while !stop.is_cancelled() {
            if last_schedule.is_none_or(|t| t.elapsed() >= SCHEDULER_TICK) {
                last_schedule = Some(std::time::Instant::now());
                // the scheduler runs on one node at a time (a PostgreSQL advisory lock)
                if leadership.is_none() {
                    match self.store.scheduler_lock().await {
                        Ok(Some(lock)) => {
                            tracing::info!(node = %self.config.node, "this node runs the scheduler");
                            leadership = Some(lock);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(error = %e, "could not take the scheduler lock"),
                    }
                }
                if leadership.is_some() {
                    match self.schedule_reconcile().await {
                        Ok(n) if n > 0 => tracing::info!(tenants = n, "marked tenants for the periodic reconcile"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "could not schedule the reconcile"),
                    }
                }
            }
            let free = self.config.workers.saturating_sub(runs.len());
            let mut claimed = 0;
            // while runs are in flight, claims are gathered (one per CLAIM_COOLDOWN):
            // on SQLite every claim is a commit on the single writer
            let cooling = !runs.is_empty() && last_claim.is_some_and(|t| t.elapsed() < CLAIM_COOLDOWN);
            if free > 0 && !cooling && !stop.is_cancelled() {
                last_claim = Some(tokio::time::Instant::now());
                let now = self.clock.now();
                match self.store.claim_tenants(&self.config.node, now, now + self.config.lease, free as u32).await {
                    Ok(claims) => {
                        claimed = claims.len();
                        for c in claims {
                            self.spawn_run(&mut runs, c, &abandon, &stop);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not take dirty tenants"),
                }
            }
            // urgent work marked here is looked at once, other nodes' at the next poll
            if runs.has_ordinary() && (urgent_marked || last_urgent_look.elapsed() >= self.config.poll) {
                urgent_marked = false;
                last_urgent_look = std::time::Instant::now();
                self.make_way(&mut runs, &abandon, &stop).await;
            }
            if claimed == 0 || runs.len() >= self.config.workers {
                // wait for a slot, or poll again, or urgent work, or the stop
                let ordinary = runs.has_ordinary();
                let cooled = last_claim.map(|t| t + CLAIM_COOLDOWN).unwrap_or_else(tokio::time::Instant::now);
                tokio::select! {
                    () = stop.cancelled() => {}
                    Some(done) = runs.set.join_next_with_id(), if !runs.is_empty() => runs.joined(done),
                    () = tokio::time::sleep(self.config.poll), if claimed == 0 || ordinary => {}
                    () = tokio::time::sleep_until(cooled), if cooling && free > 0 => {}
                    () = self.store.urgent_marked() => urgent_marked = true,
                }
            }
            while let Some(done) = runs.set.try_join_next_with_id() {
                runs.joined(done);
            }
        }
        // another node may schedule at once
        if let Some(lock) = leadership.take() {
            lock.release().await;
            tracing::info!(node = %self.config.node, "this node gave the scheduler up");
        }
        runs.stopping = true;
        self.stop_runs(&mut runs, &abandon).await;
        heartbeat.shutdown().await;
        // runs that ended on an error while the node stopped hold their leases still
        let leftover: Vec<(Uuid, String)> = runs.leftover.iter().map(|c| (c.tenant_id, c.token.clone())).collect();
        match self.store.release_leases(&leftover).await {
            Ok(()) if leftover.is_empty() => {}
            Ok(()) => tracing::info!(tenants = leftover.len(), "handed back the tenants of runs that failed"),
            Err(e) => tracing::error!(error = %e, tenants = leftover.len(),
                "could not hand tenants back; they are taken up again when their leases run out"),
        }
        tracing::info!(node = %self.config.node, "replication stopped");
    }

    fn spawn_run(
        self: &Arc<Self>,
        runs: &mut Runs,
        claim: Claim,
        abandon: &CancellationToken,
        stop: &CancellationToken,
    ) {
        let me = self.clone();
        // its own token, so that it can be asked to yield; the node's stop reaches it too
        let halt = abandon.child_token();
        let (c, h, s) = (claim.clone(), halt.clone(), stop.clone());
        runs.spawn(claim, halt, async move { me.work(c, &h, &s).await });
    }

    /// Put urgent work first (AD4): ordinary runs on tenants that became
    /// urgent yield, and urgent tenants waiting while every worker is busy
    /// are claimed at once, each in place of an ordinary run asked to
    /// yield (the one that started last: the least work is set aside).
    /// Those runs stop at their next step between platform calls, so for
    /// about one call this node runs more than `workers` tenants; the
    /// platforms' limits hold throughout.
    async fn make_way(self: &Arc<Self>, runs: &mut Runs, abandon: &CancellationToken, stop: &CancellationToken) {
        let leases = runs.ordinary_leases();
        if leases.is_empty() {
            return;
        }
        let now = self.clock.now();
        let limit = u32::try_from(self.config.workers).unwrap_or(u32::MAX);
        let work = match self.store.urgent_work(now, &leases, limit).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "could not look for urgent work");
                return;
            }
        };
        for tenant in &work.turned {
            if runs.ask_to_yield(Some(*tenant)) {
                self.yields.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%tenant, "the tenant of a replication run became urgent: the run yields");
            }
        }
        // workers that free up without being asked take the urgent tenants first anyway
        let free_soon = self.config.workers.saturating_sub(runs.len() - runs.yielding());
        let short = usize::try_from(work.waiting).unwrap_or(usize::MAX).saturating_sub(free_soon);
        let short = short.min(runs.ordinary_leases().len());
        if short == 0 {
            return;
        }
        let lease_until = now + self.config.lease;
        let limit = u32::try_from(short).unwrap_or(u32::MAX);
        let claims = match self.store.claim_urgent_tenants(&self.config.node, now, lease_until, limit).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not take urgent tenants");
                return;
            }
        };
        if !claims.is_empty() {
            tracing::info!(urgent = claims.len(), "urgent tenants wait: as many ordinary replication runs yield");
        }
        for c in claims {
            if runs.ask_to_yield(None) {
                self.yields.fetch_add(1, Ordering::Relaxed);
            }
            self.spawn_run(runs, c, abandon, stop);
        }
    }

    /// The stop of [`Replicator::run`]: the grace period for the runs in
    /// progress, then `abandon` and the wait for the platform calls they are in.
    async fn stop_runs(&self, runs: &mut Runs, abandon: &CancellationToken) {
        if runs.is_empty() {
            return;
        }
        tracing::info!(runs = runs.len(), grace = ?self.config.stop_grace, "stopping: the replication runs in progress get the grace period to finish");
        runs.drain_for(self.config.stop_grace).await;
        if runs.is_empty() {
            return;
        }
        abandon.cancel();
        tracing::info!(
            runs = runs.len(),
            "grace period over: the runs left stop at their next step between platform calls"
        );
        runs.drain_for(self.config.stop_call_wait).await;
        if runs.is_empty() {
            return;
        }
        runs.set.abort_all();
        while let Some(done) = runs.set.join_next_with_id().await {
            runs.joined(done);
        }
    }
}

type RunResult = Result<TenantRun, ReplicationError>;

/// A run of [`Replicator::run`] in flight.
struct Run {
    claim: Claim,
    /// Cancelled: stop at the next step between platform calls (the node
    /// stops, or the run yields to urgent work).
    halt: CancellationToken,
    /// When it started, in spawn order.
    seq: u64,
}

/// The runs of [`Replicator::run`] in flight, with the claim each works on.
#[derive(Default)]
struct Runs {
    set: JoinSet<RunResult>,
    runs: HashMap<TaskId, Run>,
    next: u64,
    /// The node is stopping: leases of runs that return an error (the
    /// database failed) are kept in `leftover`, to be handed back: no call
    /// of theirs is under way.
    stopping: bool,
    leftover: Vec<Claim>,
}

impl Runs {
    fn spawn(&mut self, claim: Claim, halt: CancellationToken, run: impl Future<Output = RunResult> + Send + 'static) {
        let task = self.set.spawn(run);
        self.next += 1;
        self.runs.insert(task.id(), Run { claim, halt, seq: self.next });
    }

    /// Ordinary runs not asked to stop or yield.
    fn ordinary(&self) -> impl Iterator<Item = &Run> {
        self.runs.values().filter(|r| !r.claim.is_urgent() && !r.halt.is_cancelled())
    }

    fn has_ordinary(&self) -> bool {
        self.ordinary().next().is_some()
    }

    /// The leases of the ordinary runs, (tenant, claim token).
    fn ordinary_leases(&self) -> Vec<(Uuid, String)> {
        self.ordinary().map(|r| (r.claim.tenant_id, r.claim.token.clone())).collect()
    }

    /// Runs asked to stop or yield that have not ended yet.
    fn yielding(&self) -> usize {
        self.runs.values().filter(|r| r.halt.is_cancelled()).count()
    }

    /// Ask the ordinary run on `tenant` (any: the one that started last) to
    /// yield; whether one was asked.
    fn ask_to_yield(&self, tenant: Option<Uuid>) -> bool {
        let run = self.ordinary().filter(|r| tenant.is_none_or(|t| r.claim.tenant_id == t)).max_by_key(|r| r.seq);
        run.inspect(|r| r.halt.cancel()).is_some()
    }

    fn len(&self) -> usize {
        self.set.len()
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Take in a run that ended.
    fn joined(&mut self, done: Result<(TaskId, RunResult), JoinError>) {
        match done {
            Ok((id, result)) => {
                let claim = self.runs.remove(&id).map(|r| r.claim);
                if let Err(e) = result {
                    tracing::error!(error = %e, "a replication run failed");
                    if self.stopping {
                        self.leftover.extend(claim);
                    }
                }
            }
            Err(e) => {
                let claim = self.runs.remove(&e.id()).map(|r| r.claim);
                let tenant = claim.as_ref().map(|c| c.tenant_id.to_string()).unwrap_or_default();
                if e.is_cancelled() {
                    // the call may still land on the platform: nobody else may work there yet
                    tracing::warn!(%tenant, "a replication run was cut inside a platform call at shutdown; \
                        the tenant is taken up again when its lease runs out");
                } else {
                    // its lease is no longer renewed: another run takes the tenant when it
                    // expires (it may have panicked inside a platform call: not handed back)
                    tracing::error!(%tenant, error = %e, "a replication run panicked");
                }
            }
        }
    }

    /// Take in the runs that end within `limit`.
    async fn drain_for(&mut self, limit: StdDuration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.is_empty() {
            match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                Ok(Some(done)) => self.joined(done),
                Ok(None) | Err(_) => return,
            }
        }
    }
}

/// Marks a tenant as worked on by this node for as long as it lives.
struct LeaseGuard<'a> {
    set: &'a Mutex<BTreeSet<(Uuid, String)>>,
    lease: (Uuid, String),
}

impl<'a> LeaseGuard<'a> {
    fn new(set: &'a Mutex<BTreeSet<(Uuid, String)>>, lease: (Uuid, String)) -> Self {
        set.lock().unwrap_or_else(|e| e.into_inner()).insert(lease.clone());
        LeaseGuard { set, lease }
    }
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.lease);
    }
}

type Connected<P> = (ReplicationInput, Result<Arc<P>, PlatformError>);

struct Prepared<P> {
    adapter: Arc<P>,
    input: ReplicationInput,
}

#[derive(Default)]
struct Progress {
    created: Option<String>,
    granted: Vec<Assignment<String>>,
    revoked: Vec<Assignment<String>>,
    /// Pending grants the platform turned out to hold.
    confirmed: Vec<Assignment<String>>,
    drift_found: Plan<String>,
}

impl Progress {
    /// Nothing was done that needs recording.
    fn is_empty(&self) -> bool {
        self.created.is_none() && self.granted.is_empty() && self.revoked.is_empty() && self.confirmed.is_empty()
    }
}

enum Failure {
    /// The platform failed (with the platform's id when known).
    Platform(Option<Uuid>, PlatformError),
    Store(StoreError),
    /// The node is stopping: the run stopped between two steps.
    Abandoned,
}

/// Why the platform calls of a run ended early.
enum Halt {
    Failed(PlatformError),
    /// The node is stopping: no further call was made.
    Abandoned,
}

impl From<PlatformError> for Halt {
    fn from(e: PlatformError) -> Self {
        Halt::Failed(e)
    }
}

/// How a run ended, for [`Replicator::settle`].
#[derive(Clone, Copy)]
enum Ending<'a> {
    Done,
    Failed(&'a PlatformError),
    Abandoned,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// A store failure in the middle of platform calls: retry the tenant later.
fn store_failed(e: StoreError) -> PlatformError {
    PlatformError::Retryable { message: format!("Canopy could not record progress: {e}"), retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TN4: the periodic reconcile reaches every tenant within its period,
    /// whatever the installation's size, and never marks fewer than the
    /// configured batch per tick.
    #[test]
    fn tn4_the_periodic_reconcile_reaches_every_tenant_within_its_period() {
        let every = Duration::hours(1);
        let ticks = 360; // an hour of 10 s ticks
        for tenants in [0_u64, 1, 100, 36_000, 50_000, 1_000_000, 123_457] {
            let batch = reconcile_batch(tenants, SCHEDULER_TICK, every, 100);
            assert!(batch >= 100, "{tenants}: {batch}");
            assert!(u64::from(batch) * ticks >= tenants * 5 / 4, "{tenants} tenants, {batch} per tick");
        }
        assert_eq!(reconcile_batch(50_000, SCHEDULER_TICK, every, 100), 174);
        assert_eq!(reconcile_batch(10, SCHEDULER_TICK, Duration::seconds(1), 1), 13, "a period shorter than a tick");
    }
}
