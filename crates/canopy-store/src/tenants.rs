//! Tenants, the dirty-tenant outbox that drives replication, and what
//! replication applied (TN3-TN5).
//!
//! Every change that can alter who may access a tenant marks the tenant
//! dirty ([`Tx::mark_dirty`]) in the same transaction. Workers lease dirty
//! rows ([`Store::claim_tenants`]; `FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! the single writer on SQLite), converge the tenant, and finish the row only
//! if no newer change marked it meanwhile ([`Store::finish_tenant_work`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::db::Row;
use canopy_domain::deletion::TenantDeletion;
use canopy_domain::platforms::{DeletionMode, PlatformType};
use canopy_domain::replication::{Applied, Assignment, TenantStatus};
use canopy_domain::{Binding, SubjectKind};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Backend, PlatformRecord, Result, RowExt, Store, StoreError, Tx, new_id, to_us};

/// A tenant with the names a reader needs.
#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub id: Uuid,
    pub project_id: Uuid,
    pub platform_id: Uuid,
    pub platform: String,
    pub platform_type: PlatformType,
    pub landing_zone_id: Option<Uuid>,
    pub landing_zone: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
    /// Derived: `in_progress` while a worker holds the lease, `pending` while
    /// a change waits (unless the last attempt failed), else the last outcome.
    pub status: TenantStatus,
    pub last_error: Option<String>,
    /// While `failed` with work waiting (an error worth retrying, or a
    /// change made since): when the next attempt is due (a platform's
    /// Retry-After waited out first; a past instant when it is due now).
    /// `None` after an error that retrying cannot mend, with no change since:
    /// tried again when the tenant's access changes, when asked to, or at
    /// the periodic reconcile.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_replicated_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub deletion_mode: DeletionMode,
    /// Where its deletion stands, if it is being deleted (DL1-DL5).
    pub deletion: Option<TenantDeletion>,
    /// What the platform reported in the tenant when its deletion was asked for or confirmed.
    pub deletion_resources: Vec<String>,
    pub deletion_requested_at: Option<OffsetDateTime>,
}

const TENANT_SELECT: &str = "SELECT t.id, t.project_id, t.platform_id, p.identifier AS platform, p.platform_type, \
       t.landing_zone_id, z.identifier AS landing_zone, t.name, t.external_id, t.status, t.last_error, \
       t.last_replicated_at, t.created_at, w.generation AS work_generation, w.leased_by, p.deletion AS deletion_mode, \
       t.deletion, t.deletion_resources, t.deletion_requested_at, w.due_at AS work_due_at, w.marked_at AS work_marked_at \
     FROM tenants t JOIN platforms p ON p.id = t.platform_id \
     LEFT JOIN landing_zones z ON z.id = t.landing_zone_id \
     LEFT JOIN tenant_work w ON w.tenant_id = t.id";

fn tenant_from_row(r: &Row) -> Result<TenantRecord> {
    let stored: TenantStatus = r.str("status")?.parse().map_err(StoreError::Corrupt)?;
    let dirty = r.int_opt("work_generation")?.is_some();
    let status = if r.text_opt("leased_by")?.is_some() {
        TenantStatus::InProgress
    } else if dirty && stored != TenantStatus::Failed {
        TenantStatus::Pending
    } else {
        stored
    };
    Ok(TenantRecord {
        id: r.uuid("id")?,
        project_id: r.uuid("project_id")?,
        platform_id: r.uuid("platform_id")?,
        platform: r.text("platform")?,
        platform_type: r.parse("platform_type")?,
        landing_zone_id: r.uuid_opt("landing_zone_id")?,
        landing_zone: r.text_opt("landing_zone")?,
        name: r.text("name")?,
        external_id: r.text_opt("external_id")?,
        status,
        last_error: r.text_opt("last_error")?,
        // a row marked again after a failure is due from when it was marked
        // (its `due_at` is 0: "at once")
        next_attempt_at: match (status, r.time_opt("work_due_at")?) {
            (TenantStatus::Failed, Some(due)) => Some(due.max(r.time_opt("work_marked_at")?.unwrap_or(due))),
            _ => None,
        },
        last_replicated_at: r.time_opt("last_replicated_at")?,
        created_at: r.time("created_at")?,
        deletion_mode: r.parse("deletion_mode")?,
        deletion: r.str_opt("deletion")?.map(|s| s.parse()).transpose().map_err(StoreError::Corrupt)?,
        deletion_resources: serde_json::from_str(r.str("deletion_resources")?)
            .map_err(|_| StoreError::Corrupt("deletion_resources is not a JSON list".into()))?,
        deletion_requested_at: r.time_opt("deletion_requested_at")?,
    })
}

/// Which tenants a change reaches.
#[derive(Debug, Clone, Copy)]
pub enum Reach {
    Tenant(Uuid),
    /// Every tenant of a project (a binding changed).
    Project(Uuid),
    /// Every tenant of a platform (its mapping or credentials changed).
    Platform(Uuid),
    /// Every tenant of a project a user is bound to, directly or through a
    /// group (the account was deactivated, reactivated or deleted).
    User(Uuid),
    /// Every tenant of a project a group is bound to (its members changed).
    Group(Uuid),
}

impl Reach {
    /// A query of the ids of the reached tenants, with the id as `$1`.
    fn tenant_ids(self) -> (&'static str, Uuid) {
        match self {
            Reach::Tenant(id) => ("SELECT id FROM tenants WHERE id = $1", id),
            Reach::Project(id) => ("SELECT id FROM tenants WHERE project_id = $1", id),
            Reach::Platform(id) => ("SELECT id FROM tenants WHERE platform_id = $1", id),
            Reach::User(id) => (
                "SELECT id FROM tenants WHERE project_id IN (SELECT project_id FROM bindings WHERE user_id = $1 \
                 UNION SELECT project_id FROM bindings WHERE group_id IN \
                 (SELECT group_id FROM group_members WHERE user_id = $1))",
                id,
            ),
            Reach::Group(id) => {
                ("SELECT id FROM tenants WHERE project_id IN (SELECT project_id FROM bindings WHERE group_id = $1)", id)
            }
        }
    }
}

/// How many urgent tenants are due and leased by nobody, up to `$3`: what
/// each node asks at every poll while it works ([`Store::urgent_work`]).
/// Read through `tenant_work_due`, so it costs what the urgent tenants
/// cost, whatever the backlog. The lease is tested through `COALESCE`, not
/// `lease_until IS NULL OR lease_until <= $2`: SQLite reads such an OR
/// through `tenant_work_lease`, one index search per arm, and so walked
/// every tenant not leased, the whole backlog, at every poll (a quarter of
/// the engine's CPU in B6's reconcile of 50,000 tenants).
pub const URGENT_WAITING: &str = "SELECT COUNT(*) AS n FROM (SELECT tenant_id FROM tenant_work \
     WHERE priority >= $1 AND due_at <= $2 AND COALESCE(lease_until, $2) <= $2 LIMIT CAST($3 AS BIGINT)) AS waiting";

/// Work a priority of [`Tx::mark_dirty`]: emergency revocations go first.
pub const PRIORITY_NORMAL: i64 = 0;
pub const PRIORITY_URGENT: i64 = 10;

/// A dirty tenant leased by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub tenant_id: Uuid,
    /// This claim's own lease token (`NODE/RANDOM`): finishing, failing and
    /// renewing need it, so a run whose lease expired and was taken by
    /// another run cannot settle the newer run's row.
    pub token: String,
    /// The change generation the worker converges on.
    pub generation: i64,
    /// Failed attempts since the last success or change.
    pub attempts: i64,
    /// The row's priority when it was claimed ([`PRIORITY_URGENT`] for an
    /// emergency's work).
    pub priority: i64,
}

impl Claim {
    /// Whether the work was urgent when claimed.
    pub fn is_urgent(&self) -> bool {
        self.priority >= PRIORITY_URGENT
    }
}

/// Urgent work as one node sees it ([`Store::urgent_work`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrgentWork {
    /// Urgent tenants due and leased by nobody (counted up to the limit asked).
    pub waiting: u64,
    /// Of the leases asked about, the tenants that are urgent now.
    pub turned: Vec<Uuid>,
}

/// A platform account as replication grants it.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub active: bool,
}

/// Everything a worker needs to compute a tenant's desired assignments.
#[derive(Debug, Clone)]
pub struct ReplicationInput {
    pub tenant: TenantRecord,
    pub workspace_id: Uuid,
    /// The project's identifier, for the history.
    pub project: String,
    pub platform: PlatformRecord,
    pub landing_zone_settings: Option<Map<String, Value>>,
    /// Project role id → platform role.
    pub role_mapping: BTreeMap<Uuid, String>,
    pub bindings: Vec<Binding>,
    pub group_members: BTreeMap<Uuid, BTreeSet<Uuid>>,
    pub accounts: Vec<AccountRecord>,
    /// What Canopy applied in the tenant, by platform account.
    pub applied: BTreeMap<Assignment<String>, Applied>,
}

impl Tx {
    /// Add a tenant to a project; it is dirty at once, so replication creates it.
    /// `name` makes the tenant's name on the platform from its new id.
    pub async fn insert_tenant(
        &mut self,
        project_id: Uuid,
        platform_id: Uuid,
        landing_zone_id: Option<Uuid>,
        name: impl FnOnce(Uuid) -> String,
        now: OffsetDateTime,
    ) -> Result<TenantRecord> {
        // random, not `new_id`: its name carries the first hex digits (`tenant_name`)
        let id = Uuid::new_v4();
        let name = name(id);
        let written = crate::db::query(
            "INSERT INTO tenants (id, project_id, platform_id, landing_zone_id, name, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(id.to_string())
        .bind(project_id.to_string())
        .bind(platform_id.to_string())
        .bind(landing_zone_id.map(|z| z.to_string()))
        .bind(&name)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "insert_tenant");
        self.mark_dirty(Reach::Tenant(id), PRIORITY_NORMAL, now).await?;
        self.tenant_by_id(id).await?.ok_or(StoreError::Conflict)
    }

    pub async fn tenant_by_id(&mut self, id: Uuid) -> Result<Option<TenantRecord>> {
        let row = crate::db::query(format!("{TENANT_SELECT} WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// The tenant of a project on a platform (by the platform's identifier).
    pub async fn tenant(&mut self, project_id: Uuid, platform: &str) -> Result<Option<TenantRecord>> {
        let row = crate::db::query(format!("{TENANT_SELECT} WHERE t.project_id = $1 AND p.identifier = $2"))
            .bind(project_id.to_string())
            .bind(platform)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// A project's tenants, by platform identifier.
    pub async fn project_tenants(&mut self, project_id: Uuid) -> Result<Vec<TenantRecord>> {
        let rows = crate::db::query(format!("{TENANT_SELECT} WHERE t.project_id = $1 ORDER BY p.identifier"))
            .bind(project_id.to_string())
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// How many tenants live on a platform, or in one of its landing zones.
    pub async fn count_tenants(&mut self, platform_id: Uuid, landing_zone_id: Option<Uuid>) -> Result<i64> {
        let r = crate::db::query(
            "SELECT COUNT(*) AS n FROM tenants WHERE platform_id = $1 AND ($2 IS NULL OR landing_zone_id = $2)",
        )
        .bind(platform_id.to_string())
        .bind(landing_zone_id.map(|z| z.to_string()))
        .fetch_one(self.conn())
        .await?;
        r.int("n")
    }

    /// Mark the tenants a change reaches as dirty, in the change's
    /// transaction. A mark makes the row due at once (never before the
    /// platform's Retry-After), resets its backoff, and bumps its generation
    /// so a worker busy with an older state converges again.
    ///
    /// `now` is when the tenant starts waiting: a row keeps its first mark
    /// until it converges, so the age of the oldest waiting tenant
    /// ([`Store::backlog`]) tells how far replication is behind.
    pub async fn mark_dirty(&mut self, reach: Reach, priority: i64, now: OffsetDateTime) -> Result<u64> {
        let (ids, id) = reach.tenant_ids();
        // ORDER BY id: concurrent marks lock rows in one order
        let done = crate::db::query(format!(
            "INSERT INTO tenant_work (tenant_id, generation, priority, due_at, not_before, attempts, marked_at) \
             SELECT id, 1, $2, 0, 0, 0, $3 FROM ({ids}) AS reached WHERE true ORDER BY id \
             ON CONFLICT (tenant_id) DO UPDATE SET generation = tenant_work.generation + 1, \
               priority = CASE WHEN tenant_work.priority > $2 THEN tenant_work.priority ELSE $2 END, \
               due_at = tenant_work.not_before, attempts = 0, \
               marked_at = COALESCE(tenant_work.marked_at, $3)"
        ))
        .bind(id.to_string())
        .bind(priority)
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        if priority >= PRIORITY_URGENT && done.rows_affected() > 0 {
            self.urgent_marked = true;
        }
        Ok(done.rows_affected())
    }

    /// Everything replication needs about one tenant, read in one snapshot.
    pub async fn replication_input(&mut self, tenant_id: Uuid) -> Result<Option<ReplicationInput>> {
        let Some(tenant) = self.tenant_by_id(tenant_id).await? else { return Ok(None) };
        let Some(project) = self.project_by_id(tenant.project_id).await? else { return Ok(None) };
        let Some(platform) = self.platform(&tenant.platform).await? else { return Ok(None) };
        let landing_zone_settings = match &tenant.landing_zone {
            Some(z) => self.landing_zone(platform.id, z).await?.map(|z| z.settings),
            None => None,
        };
        let rows = crate::db::query("SELECT role_id, platform_role FROM platform_role_mappings WHERE platform_id = $1")
            .bind(platform.id.to_string())
            .fetch_all(self.conn())
            .await?;
        let role_mapping =
            rows.iter().map(|r| Ok((r.uuid("role_id")?, r.text("platform_role")?))).collect::<Result<_>>()?;
        let bindings: Vec<Binding> =
            self.project_bindings(tenant.project_id).await?.into_iter().map(|b| b.binding).collect();
        let groups: BTreeSet<Uuid> =
            bindings.iter().filter(|b| b.subject.kind == SubjectKind::Group).map(|b| b.subject.id).collect();
        let group_members = self.group_memberships(&groups).await?;
        let mut user_ids: BTreeSet<Uuid> = group_members.values().flatten().copied().collect();
        user_ids.extend(bindings.iter().filter(|b| b.subject.kind == SubjectKind::User).map(|b| b.subject.id));
        let applied = self.applied_assignments(tenant_id).await?;
        let mut accounts = self.accounts("id", user_ids.iter().map(Uuid::to_string).collect()).await?;
        // the people Canopy gave a role there and no binding names any more:
        // a platform that names people by e-mail needs theirs to take it away
        let known: BTreeSet<&str> = accounts.iter().map(|a| a.username.as_str()).collect();
        let others: BTreeSet<String> =
            applied.keys().map(|a| a.user.as_str()).filter(|u| !known.contains(u)).map(str::to_owned).collect();
        accounts.extend(self.accounts("username", others.into_iter().collect()).await?);
        Ok(Some(ReplicationInput {
            tenant,
            workspace_id: project.workspace_id,
            project: project.identifier,
            platform,
            landing_zone_settings,
            role_mapping,
            bindings,
            group_members,
            accounts,
            applied,
        }))
    }

    /// The platform accounts of the users whose `column` (`id` or
    /// `username`) is one of `keys`, a query per 500 rather than two per
    /// user: a full reconcile reads every project's (B6).
    async fn accounts(&mut self, column: &'static str, keys: Vec<String>) -> Result<Vec<AccountRecord>> {
        debug_assert!(matches!(column, "id" | "username"));
        let mut accounts = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let mut q = crate::db::query(format!(
                "SELECT id, username, email, active FROM users WHERE {column} IN ({}) ORDER BY id",
                placeholders.join(", ")
            ));
            for key in chunk {
                q = q.bind(key);
            }
            for r in q.fetch_all(self.conn()).await? {
                accounts.push(AccountRecord {
                    id: r.uuid("id")?,
                    username: r.text("username")?,
                    email: r.text("email")?,
                    active: r.flag("active")?,
                });
            }
        }
        Ok(accounts)
    }

    pub async fn applied_assignments(&mut self, tenant_id: Uuid) -> Result<BTreeMap<Assignment<String>, Applied>> {
        let rows =
            crate::db::query("SELECT account, platform_role, applied_at FROM tenant_assignments WHERE tenant_id = $1")
                .bind(tenant_id.to_string())
                .fetch_all(self.conn())
                .await?;
        rows.iter()
            .map(|r| {
                let state = if r.int_opt("applied_at")?.is_some() { Applied::Confirmed } else { Applied::Pending };
                Ok((Assignment { user: r.text("account")?, platform_role: r.text("platform_role")? }, state))
            })
            .collect()
    }
}

impl Store {
    /// Lease up to `limit` due dirty tenants for a run of `node` until `lease_until`,
    /// most urgent first. A lease left by a crashed node expires and the row
    /// is taken again; PostgreSQL hands out rows with `FOR UPDATE SKIP
    /// LOCKED`, so concurrent nodes never take the same one.
    pub async fn claim_tenants(
        &self,
        node: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        self.claim(node, now, lease_until, limit, i64::MIN).await
    }

    /// Like [`Store::claim_tenants`], only urgent tenants
    /// ([`PRIORITY_URGENT`]): what a node takes in place of ordinary runs it
    /// asks to yield.
    pub async fn claim_urgent_tenants(
        &self,
        node: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        self.claim(node, now, lease_until, limit, PRIORITY_URGENT).await
    }

    async fn claim(
        &self,
        node: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
        min_priority: i64,
    ) -> Result<Vec<Claim>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let token = format!("{node}/{}", Uuid::new_v4().simple());
        let mut tx = self.write_first().await?;
        // a CTE, not `IN (SELECT ... LIMIT)`: PostgreSQL may run such a
        // subquery more than once and lease more rows than asked for
        let rows = crate::db::query(format!(
            "WITH picked AS ( \
               SELECT tenant_id FROM tenant_work WHERE priority >= $5 AND due_at <= $2 \
                 AND COALESCE(lease_until, $2) <= $2 \
               ORDER BY priority DESC, due_at, tenant_id LIMIT CAST($4 AS BIGINT) {lock}) \
             UPDATE tenant_work SET leased_by = $1, lease_until = $3 FROM picked \
             WHERE tenant_work.tenant_id = picked.tenant_id \
             RETURNING tenant_work.tenant_id, tenant_work.generation, tenant_work.attempts, tenant_work.priority"
        ))
        .bind(&token)
        .bind(to_us(now))
        .bind(to_us(lease_until))
        .bind(i64::from(limit))
        .bind(min_priority)
        .fetch_all(tx.conn())
        .await?;
        tx.commit().await?;
        let mut claims: Vec<Claim> = rows
            .iter()
            .map(|r| {
                Ok(Claim {
                    tenant_id: r.uuid("tenant_id")?,
                    token: token.clone(),
                    generation: r.int("generation")?,
                    attempts: r.int("attempts")?,
                    priority: r.int("priority")?,
                })
            })
            .collect::<Result<_>>()?;
        claims.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.tenant_id));
        Ok(claims)
    }

    /// What a node that works on `leases` (tenant, claim token) needs to
    /// know to put urgent work first, in one snapshot: how many urgent
    /// tenants are due and leased by nobody (counted up to `limit`), and
    /// which of its leased tenants became urgent since it claimed them.
    /// Both are read through indexes (`tenant_work_due`, the primary key),
    /// whatever the size of the backlog.
    pub async fn urgent_work(&self, now: OffsetDateTime, leases: &[(Uuid, String)], limit: u32) -> Result<UrgentWork> {
        let mut tx = self.read().await?;
        let r = crate::db::query(URGENT_WAITING)
            .bind(PRIORITY_URGENT)
            .bind(to_us(now))
            .bind(i64::from(limit))
            .fetch_one(tx.conn())
            .await?;
        let waiting = u64::try_from(r.int("n")?).unwrap_or(0);
        let mut turned = Vec::new();
        for chunk in leases.chunks(500) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let mut q = crate::db::query(format!(
                "SELECT tenant_id, leased_by FROM tenant_work WHERE priority >= $1 AND tenant_id IN ({})",
                placeholders.join(", ")
            ))
            .bind(PRIORITY_URGENT);
            for (tenant, _) in chunk {
                q = q.bind(tenant.to_string());
            }
            for r in q.fetch_all(tx.conn()).await? {
                let (tenant, by) = (r.uuid("tenant_id")?, r.text_opt("leased_by")?);
                if chunk.iter().any(|(t, token)| *t == tenant && by.as_deref() == Some(token.as_str())) {
                    turned.push(tenant);
                }
            }
        }
        Ok(UrgentWork { waiting, turned })
    }

    /// Lease one tenant for work done outside a replication run (revoking
    /// everything before a manual deletion is confirmed), so that no run
    /// works on it meanwhile: `None` while a run holds it. The lease lasts
    /// until `lease_until`, or until the tenant goes (its work row with it);
    /// [`Store::release_tenant`] gives it back earlier.
    pub async fn hold_tenant(
        &self,
        tenant_id: Uuid,
        node: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<Claim>> {
        let token = format!("{node}/{}", Uuid::new_v4().simple());
        let mut tx = self.write().await?;
        let row = crate::db::query(
            "INSERT INTO tenant_work (tenant_id, generation, priority, due_at, leased_by, lease_until) \
             VALUES ($1, 0, 0, $3, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET leased_by = $2, lease_until = $3 \
               WHERE tenant_work.lease_until IS NULL OR tenant_work.lease_until <= $4 \
             RETURNING generation, attempts, priority",
        )
        .bind(tenant_id.to_string())
        .bind(&token)
        .bind(to_us(lease_until))
        .bind(to_us(now))
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(Claim {
                tenant_id,
                token,
                generation: r.int("generation")?,
                attempts: r.int("attempts")?,
                priority: r.int("priority")?,
            })
        })
        .transpose()
    }

    /// Give back a lease taken with [`Store::hold_tenant`].
    pub async fn release_tenant(&self, claim: &Claim) -> Result<()> {
        let mut tx = self.write_first().await?;
        crate::db::query(
            "UPDATE tenant_work SET leased_by = NULL, lease_until = NULL WHERE tenant_id = $1 AND leased_by = $2",
        )
        .bind(claim.tenant_id.to_string())
        .bind(&claim.token)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// Give back leases a stopping node still holds, (tenant, claim token),
    /// in one transaction: the rows stay as they are (dirty, with their
    /// generation and attempts), free for any node's next claim at once.
    /// Like [`Store::release_tenant`], only a claim's own token releases it:
    /// a lease that ran out and was taken by another run is left alone.
    pub async fn release_leases(&self, leases: &[(Uuid, String)]) -> Result<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_first().await?;
        for (t, token) in leases {
            crate::db::query(
                "UPDATE tenant_work SET leased_by = NULL, lease_until = NULL WHERE tenant_id = $1 AND leased_by = $2",
            )
            .bind(t.to_string())
            .bind(token)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }

    /// Extend the leases of runs that still work (a heartbeat): (tenant, claim token).
    pub async fn renew_leases(&self, leases: &[(Uuid, String)], lease_until: OffsetDateTime) -> Result<()> {
        let mut tx = self.write_first().await?;
        for (t, token) in leases {
            crate::db::query("UPDATE tenant_work SET lease_until = $3 WHERE tenant_id = $1 AND leased_by = $2")
                .bind(t.to_string())
                .bind(token)
                .bind(to_us(lease_until))
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await
    }

    /// The work on a tenant succeeded: drop the row unless a newer change
    /// marked it meanwhile (then release it, due at once). Answers whether
    /// the row is done. A replication run does this in the transaction that
    /// records its outcome ([`Tx::finish_tenant_work`]).
    pub async fn finish_tenant_work(&self, claim: &Claim) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = tx.finish_tenant_work(claim).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The work on a tenant failed: try again at `due_at`, and never call the
    /// platform for it before `not_before` (its Retry-After). With `due_at`
    /// `None` (a permanent failure) the row is dropped unless a newer change
    /// marked it; the next change or reconcile tries again.
    pub async fn fail_tenant_work(
        &self,
        claim: &Claim,
        due_at: Option<OffsetDateTime>,
        not_before: OffsetDateTime,
    ) -> Result<()> {
        let node = &claim.token;
        let mut tx = self.write().await?;
        let id = claim.tenant_id.to_string();
        let dropped = match due_at {
            None => {
                crate::db::query("DELETE FROM tenant_work WHERE tenant_id = $1 AND generation = $2 AND leased_by = $3")
                    .bind(&id)
                    .bind(claim.generation)
                    .bind(node)
                    .execute(tx.conn())
                    .await?
                    .rows_affected()
                    > 0
            }
            Some(_) => false,
        };
        if !dropped {
            // a newer change keeps its "due now", but not before Retry-After
            let due = due_at.map(to_us).unwrap_or(0);
            crate::db::query(
                "UPDATE tenant_work SET leased_by = NULL, lease_until = NULL, not_before = $3, \
                   attempts = CASE WHEN generation = $4 THEN attempts + 1 ELSE attempts END, \
                   due_at = CASE WHEN generation = $4 AND $2 > $3 THEN $2 ELSE $3 END \
                 WHERE tenant_id = $1 AND leased_by = $5",
            )
            .bind(&id)
            .bind(due)
            .bind(to_us(not_before))
            .bind(claim.generation)
            .bind(node)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }

    /// Mark dirty, at most `limit` at a time, the tenants not reconciled
    /// since `older_than` (the periodic full reconcile, TN4). Answers how many.
    pub async fn mark_for_reconcile(&self, older_than: OffsetDateTime, limit: u32, now: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write().await?;
        // walks `tenants_reconcile_due` in order and stops at the limit: no sort of
        // every due tenant, whatever their number (B6)
        let rows = crate::db::query(
            "SELECT id FROM tenants WHERE COALESCE(last_reconciled_at, 0) < $1 \
               AND NOT EXISTS (SELECT 1 FROM tenant_work w WHERE w.tenant_id = tenants.id) \
             ORDER BY COALESCE(last_reconciled_at, 0), id LIMIT CAST($2 AS BIGINT)",
        )
        .bind(to_us(older_than))
        .bind(i64::from(limit))
        .fetch_all(tx.conn())
        .await?;
        let mut ids = rows.iter().map(|r| r.uuid("id")).collect::<Result<Vec<_>>>()?;
        // in id order, like every other mark, so concurrent marks cannot deadlock
        ids.sort_by_key(|id| id.to_string());
        let mut n = 0;
        for id in ids {
            n += tx.mark_dirty(Reach::Tenant(id), PRIORITY_NORMAL, now).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// How many tenants there are.
    pub async fn tenant_count(&self) -> Result<u64> {
        let mut tx = self.read().await?;
        let r = crate::db::query("SELECT COUNT(*) AS n FROM tenants").fetch_one(tx.conn()).await?;
        Ok(u64::try_from(r.int("n")?).unwrap_or(0))
    }

    /// How many dirty tenants wait or are being worked on.
    pub async fn tenant_backlog(&self) -> Result<i64> {
        let mut tx = self.read().await?;
        let r = crate::db::query("SELECT COUNT(*) AS n FROM tenant_work").fetch_one(tx.conn()).await?;
        r.int("n")
    }

    /// The work waiting at `now`, for `GET /metrics`: dirty tenants not
    /// leased and the oldest mark among them, tenants leased by a run, and
    /// unsent mails with the oldest of them. One snapshot; each figure is a
    /// `COUNT` or `MIN` over an index (`tenant_work_lease`,
    /// `tenant_work_marked`, `outbox_mails_waiting`).
    pub async fn backlog(&self, now: OffsetDateTime) -> Result<Backlog> {
        let mut tx = self.read().await?;
        let r = crate::db::query(
            "SELECT \
               (SELECT COUNT(*) FROM tenant_work WHERE lease_until IS NULL OR lease_until <= $1) AS waiting, \
               (SELECT MIN(marked_at) FROM tenant_work WHERE lease_until IS NULL OR lease_until <= $1) AS oldest, \
               (SELECT COUNT(*) FROM tenant_work WHERE lease_until > $1) AS leased, \
               (SELECT COUNT(*) FROM outbox_mails WHERE sent_at IS NULL) AS mails, \
               (SELECT MIN(created_at) FROM outbox_mails WHERE sent_at IS NULL) AS oldest_mail",
        )
        .bind(to_us(now))
        .fetch_one(tx.conn())
        .await?;
        Ok(Backlog {
            tenants_waiting: r.int("waiting")?,
            oldest_tenant_marked_at: r.int_opt("oldest")?.map(crate::from_us).transpose()?,
            tenants_leased: r.int("leased")?,
            mails_waiting: r.int("mails")?,
            oldest_mail_created_at: r.int_opt("oldest_mail")?.map(crate::from_us).transpose()?,
        })
    }
}

/// The work waiting in the database at one instant ([`Store::backlog`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Dirty tenants no run holds (due now or backing off).
    pub tenants_waiting: i64,
    /// When the tenant waiting longest became dirty (none waiting, or only
    /// rows older than the column).
    pub oldest_tenant_marked_at: Option<OffsetDateTime>,
    /// Tenants a replication run (of any node) holds a lease on.
    pub tenants_leased: i64,
    /// E-mails not sent yet.
    pub mails_waiting: i64,
    /// When the oldest of them was queued.
    pub oldest_mail_created_at: Option<OffsetDateTime>,
}

/// One outcome of a replication run, written in one transaction.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// The tenant holds exactly the desired assignments (every run observes
    /// the whole tenant, so it is a full reconcile too).
    Succeeded,
    Failed {
        error: &'a str,
    },
}

impl Tx {
    /// [`Store::finish_tenant_work`] in this transaction, so that a run's
    /// outcome and the end of its work commit together, at the cost of one
    /// commit.
    pub async fn finish_tenant_work(&mut self, claim: &Claim) -> Result<bool> {
        let node = &claim.token;
        let done =
            crate::db::query("DELETE FROM tenant_work WHERE tenant_id = $1 AND generation = $2 AND leased_by = $3")
                .bind(claim.tenant_id.to_string())
                .bind(claim.generation)
                .bind(node)
                .execute(self.conn())
                .await?
                .rows_affected()
                > 0;
        if !done {
            crate::db::query(
                "UPDATE tenant_work SET leased_by = NULL, lease_until = NULL WHERE tenant_id = $1 AND leased_by = $2",
            )
            .bind(claim.tenant_id.to_string())
            .bind(node)
            .execute(self.conn())
            .await?;
        }
        Ok(done)
    }

    /// Record that Canopy is about to grant an assignment (pending), so a
    /// crash before the platform confirms is never mistaken for drift.
    pub async fn record_grant_intent(&mut self, tenant_id: Uuid, a: &Assignment<String>) -> Result<()> {
        crate::db::query(
            "INSERT INTO tenant_assignments (tenant_id, account, platform_role, applied_at) VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (tenant_id, account, platform_role) DO NOTHING",
        )
        .bind(tenant_id.to_string())
        .bind(&a.user)
        .bind(&a.platform_role)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The platform holds the assignment.
    pub async fn confirm_grant(&mut self, tenant_id: Uuid, a: &Assignment<String>, at: OffsetDateTime) -> Result<()> {
        crate::db::query(
            "INSERT INTO tenant_assignments (tenant_id, account, platform_role, applied_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, account, platform_role) DO UPDATE SET applied_at = $4",
        )
        .bind(tenant_id.to_string())
        .bind(&a.user)
        .bind(&a.platform_role)
        .bind(to_us(at))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The platform no longer holds the assignment: forget it and record when
    /// the platform confirmed the revocation.
    pub async fn confirm_revocation(
        &mut self,
        tenant_id: Uuid,
        a: &Assignment<String>,
        at: OffsetDateTime,
    ) -> Result<()> {
        crate::db::query("DELETE FROM tenant_assignments WHERE tenant_id = $1 AND account = $2 AND platform_role = $3")
            .bind(tenant_id.to_string())
            .bind(&a.user)
            .bind(&a.platform_role)
            .execute(self.conn())
            .await?;
        crate::db::query(
            "INSERT INTO tenant_revocations (id, tenant_id, account, platform_role, confirmed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id())
        .bind(tenant_id.to_string())
        .bind(&a.user)
        .bind(&a.platform_role)
        .bind(to_us(at))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// When the platform confirmed each revocation of an account, per tenant.
    pub async fn revocations_of(&mut self, account: &str) -> Result<Vec<(Uuid, String, OffsetDateTime)>> {
        let rows = crate::db::query(
            "SELECT tenant_id, platform_role, confirmed_at FROM tenant_revocations WHERE account = $1 \
             ORDER BY confirmed_at, tenant_id",
        )
        .bind(account)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| Ok((r.uuid("tenant_id")?, r.text("platform_role")?, r.time("confirmed_at")?))).collect()
    }

    pub async fn set_tenant_external_id(&mut self, tenant_id: Uuid, external_id: &str) -> Result<()> {
        crate::db::query("UPDATE tenants SET external_id = $2 WHERE id = $1")
            .bind(tenant_id.to_string())
            .bind(external_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Record how a replication run ended.
    pub async fn set_tenant_outcome(
        &mut self,
        tenant_id: Uuid,
        outcome: Outcome<'_>,
        at: OffsetDateTime,
    ) -> Result<()> {
        match outcome {
            Outcome::Succeeded => {
                crate::db::query(
                    "UPDATE tenants SET status = 'succeeded', last_error = NULL, last_replicated_at = $2, \
                     last_reconciled_at = $2 WHERE id = $1",
                )
                .bind(tenant_id.to_string())
                .bind(to_us(at))
                .execute(self.conn())
                .await?;
            }
            Outcome::Failed { error } => {
                // a failed run counts as the tenant's reconcile too, so a platform that
                // keeps failing is not marked again at every scheduler tick
                crate::db::query(
                    "UPDATE tenants SET status = 'failed', last_error = $2, last_reconciled_at = $3 WHERE id = $1",
                )
                .bind(tenant_id.to_string())
                .bind(error)
                .bind(to_us(at))
                .execute(self.conn())
                .await?;
            }
        }
        Ok(())
    }
}

impl Tx {
    /// Set a tenant's deletion state (and the resources the platform reported).
    pub async fn set_tenant_deletion(
        &mut self,
        tenant_id: Uuid,
        state: Option<TenantDeletion>,
        resources: &[String],
        at: OffsetDateTime,
    ) -> Result<()> {
        let written = crate::db::query(
            "UPDATE tenants SET deletion = $2, deletion_resources = $3, \
             deletion_requested_at = CASE WHEN $2 IS NULL THEN NULL ELSE COALESCE(deletion_requested_at, $4) END \
             WHERE id = $1",
        )
        .bind(tenant_id.to_string())
        .bind(state.map(TenantDeletion::as_str))
        .bind(serde_json::json!(resources).to_string())
        .bind(to_us(at))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "set_tenant_deletion");
        Ok(())
    }

    /// Lock the rows of a project's tenants until the transaction ends. A
    /// transaction that changes tenants and appends history takes this
    /// first, so two such transactions cannot deadlock on PostgreSQL.
    pub async fn lock_project_tenants(&mut self, project_id: Uuid) -> Result<()> {
        crate::db::query("UPDATE tenants SET status = status WHERE project_id = $1")
            .bind(project_id.to_string())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Mark (or unmark) a whole project as being deleted.
    pub async fn set_project_deletion(&mut self, project_id: Uuid, at: Option<OffsetDateTime>) -> Result<()> {
        let written = crate::db::query("UPDATE projects SET deletion_requested_at = $2 WHERE id = $1")
            .bind(project_id.to_string())
            .bind(at.map(to_us))
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "set_project_deletion");
        Ok(())
    }

    /// Forget a tenant whose deletion succeeded (its work, assignments and
    /// revocation records go with it).
    pub async fn delete_tenant(&mut self, tenant_id: Uuid) -> Result<()> {
        let written = crate::db::query("DELETE FROM tenants WHERE id = $1")
            .bind(tenant_id.to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "delete_tenant");
        Ok(())
    }

    /// Tenant deletions on a platform waiting for a platform engineer (DL3),
    /// with their workspace and project identifiers.
    pub async fn deletions_awaiting_engineer(
        &mut self,
        platform_id: Uuid,
    ) -> Result<Vec<(TenantRecord, String, String)>> {
        let rows = crate::db::query(format!(
            "SELECT q.*, ws.identifier AS ws_identifier, pr.identifier AS project_identifier FROM ({TENANT_SELECT}) q \
             JOIN projects pr ON pr.id = q.project_id JOIN workspaces ws ON ws.id = pr.workspace_id \
             WHERE q.platform_id = $1 AND q.deletion = 'awaiting_engineer' ORDER BY q.deletion_requested_at, q.id"
        ))
        .bind(platform_id.to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((tenant_from_row(r)?, r.text("ws_identifier")?, r.text("project_identifier")?)))
            .collect()
    }
}
