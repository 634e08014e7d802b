//! Canopy's storage: the only crate that runs SQL.
//!
//! One code path for SQLite and PostgreSQL: portable SQL (see `migrations/`)
//! run through the `db` module, which picks the driver per backend (rusqlite
//! for SQLite, sqlx for PostgreSQL). Every change is made in a [`Tx`] together
//! with its history event ([`Tx::record`]), so a change without its event, or
//! an event without its change, cannot be committed. A transaction buffers
//! its events and appends them at [`Tx::commit`], every chain in one order.
//!
//! SQLite has a single writer: the write transactions of this process take
//! turns on one connection (`sqlite_writer`), so concurrent requests queue
//! instead of failing with `SQLITE_BUSY`, and those that queue together
//! commit together, with one `fsync` (group commit). PostgreSQL needs
//! neither.
//!
//! Every statement is a round trip to the connection (on PostgreSQL, to the
//! server), so the hot paths use as few as the rules allow:
//! a user comes with their installation roles in one statement, a request
//! authenticates in one outside any transaction ([`Store::session_account`]),
//! and a workspace is loaded with the caller's roles in it in one
//! ([`Tx::workspace_with_roles`]). Limits are bound as `CAST($n AS BIGINT)`,
//! never as a bare `$n`: SQLite re-prepares a statement whose bare `LIMIT`
//! parameter is bound again, at every execution.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use db::{Conn, Pool, Row};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

mod access;
mod accounts;
mod db;
mod emergency;
mod history;
mod identities;
mod outbox;
mod payments;
mod platforms;
mod requests;
mod scim;
mod secrets;
mod settings;
mod signin;
mod sqlite_writer;
mod tags;
mod tenants;
mod workspaces;

pub use access::*;
pub use accounts::*;
pub use emergency::*;
pub use history::*;
pub use identities::*;
pub use outbox::*;
pub use payments::*;
pub use platforms::*;
pub use requests::*;
pub use scim::*;
pub use secrets::SecretKey;
pub use settings::*;
pub use tenants::*;
pub use workspaces::*;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique or foreign-key constraint refused the write (a race the
    /// caller's check missed).
    #[error("already exists")]
    Conflict,
    /// Text the database cannot store (a NUL character on PostgreSQL).
    #[error("text contains characters that cannot be stored")]
    InvalidText,
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
    /// The SQLite database file could not be created or made private.
    #[error("{0}")]
    File(String),
    /// A transaction changed recorded state (through the store methods
    /// named) but recorded no history event, so it was rolled back rather
    /// than committed: a bug in the caller, which must record the change.
    #[error("a change to recorded state ({0}) without its history event was refused; nothing was committed")]
    Unrecorded(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            // what a row refers to was deleted by a concurrent transaction
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict,
            // PostgreSQL gave up on one of two transactions that waited on each
            // other (deadlock_detected, serialization_failure): the client may retry.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")) => {
                StoreError::Conflict
            }
            // character_not_in_repertoire: PostgreSQL text cannot hold NUL
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => StoreError::InvalidText,
            _ => StoreError::Database(e.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the database, with migrations applied.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
    /// SQLite's single writer, which every write transaction takes in turn.
    writer: Option<Arc<sqlite_writer::SqliteWriter>>,
    /// Told when a transaction of this process that marked urgent work
    /// commits ([`Store::urgent_marked`]).
    urgent: Arc<Notify>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The file a `sqlite:` URL names (what follows `sqlite:`, with or without
/// `//`; options after `?` are not taken). `None` for an in-memory
/// database, which would be lost at every restart and is not offered.
fn sqlite_path(rest: &str) -> Option<std::path::PathBuf> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') || rest.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// The SQLite file at `path`, created readable by its owner only, and its
/// journal files narrowed to that too: it holds password hashes and
/// encrypted secrets (issue 11, finding 12). SQLite gives its `-wal` and
/// `-shm` files the database file's mode.
fn private_sqlite_file(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let shown = path.display();
        let io = |e: std::io::Error| StoreError::File(format!("cannot prepare the database file {shown}: {e}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let name = path.as_os_str().to_string_lossy();
        for file in [name.to_string(), format!("{name}-wal"), format!("{name}-shm")] {
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl Store {
    /// Connect to `sqlite://PATH` (created when missing) or `postgres://...`
    /// and apply pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let (backend, pool, writer) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = sqlite_path(rest).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
            private_sqlite_file(&path)?;
            // migrations through sqlx (one folder for both backends), on a
            // connection of their own that is closed before serving
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10));
            let mut conn = sqlx::ConnectOptions::connect(&opts).await?;
            MIGRATOR.run(&mut conn).await?;
            sqlx::Connection::close(conn).await?;
            // Four connections for reads: statements run on the task that
            // asked (see `db`), so more connections than cores buy nothing but
            // page caches; a transaction waiting on something else keeps one.
            // And one for every write, so that its page cache stays valid
            // (no other connection writes).
            let writer = sqlite_writer::SqliteWriter::new(db::open_sqlite(&path)?)?;
            (Backend::Sqlite, Pool::Sqlite(db::SqlitePool::open(path, 4)?), Some(writer))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(db::ACQUIRE_TIMEOUT)
                .max_connections(16)
                // sqlx pings a connection when it comes back to the pool (which
                // also flushes a dropped transaction's rollback) and, by default,
                // again when it is taken out: one round trip more per request.
                // Only one idle long enough to have been cut off is pinged
                // before use (as HikariCP's alive-bypass window does).
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= db::PING_WHEN_IDLE_FOR {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await?;
            MIGRATOR.run(&pool).await?;
            (Backend::Postgres, Pool::Postgres(pool), None)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Store { pool, backend, writer, urgent: Arc::new(Notify::new()) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reads of one statement that need no transaction.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Begin a transaction that may write.
    pub async fn write(&self) -> Result<Tx> {
        self.begin_write(false).await
    }

    /// A write transaction that goes before the ordinary ones queued on
    /// SQLite's single writer: it waits for the one writing and at most one
    /// other. For the short operational writes that set replication runs
    /// going or free their tenants (claims, hand-backs, lease renewals), so
    /// that a worker whose run ended does not wait behind every other run's
    /// outcome (B2). The same as [`Store::write`] on PostgreSQL.
    pub(crate) async fn write_first(&self) -> Result<Tx> {
        self.begin_write(true).await
    }

    async fn begin_write(&self, first: bool) -> Result<Tx> {
        let inner = match &self.writer {
            Some(writer) => Conn::SqliteWriter(writer.begin(first).await?),
            None => self.pool.begin("BEGIN").await?,
        };
        Ok(Tx {
            inner,
            events: Vec::new(),
            changed: Vec::new(),
            settings: None,
            workspace_four_eye: None,
            workspaces_locked: std::collections::BTreeSet::new(),
            urgent_marked: false,
            urgent: self.urgent.clone(),
        })
    }

    /// Begin a transaction that only reads, over one consistent snapshot
    /// (SQLite's read transactions are snapshots; PostgreSQL's default, READ
    /// COMMITTED, is not, so it is raised to REPEATABLE READ).
    pub async fn read(&self) -> Result<Tx> {
        let inner = self
            .pool
            .begin(match self.backend {
                Backend::Sqlite => "BEGIN",
                Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            })
            .await?;
        Ok(Tx {
            inner,
            events: Vec::new(),
            changed: Vec::new(),
            settings: None,
            workspace_four_eye: None,
            workspaces_locked: std::collections::BTreeSet::new(),
            urgent_marked: false,
            urgent: self.urgent.clone(),
        })
    }

    /// After a bulk load (the benches' set-up): on PostgreSQL, vacuum and
    /// analyze every table at once, as its autovacuum would soon after, so
    /// that what is measured next is the steady state and not autovacuum
    /// at work or plans made without statistics. SQLite keeps none (no
    /// `ANALYZE` runs in an installation either), so nothing is done there.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("VACUUM (ANALYZE)").execute(pool).await?;
        }
        Ok(())
    }

    /// Become the node that runs the scheduler: on PostgreSQL, a session
    /// advisory lock held by one connection for as long as the answer lives
    /// (a node that dies releases it with its connection); SQLite has one
    /// node, which always gets it. `None`: another node holds it.
    pub async fn scheduler_lock(&self) -> Result<Option<SchedulerLock>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Some(SchedulerLock { conn: None }));
        };
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCHEDULER_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // detached: a pooled connection would keep the lock after release
            return Ok(Some(SchedulerLock { conn: Some(conn.detach()) }));
        }
        Ok(None)
    }

    /// Resolves once a transaction of this process that marked urgent work
    /// (`PRIORITY_URGENT`) has committed since the last call answered, so
    /// that this node's replication takes it up at once; other nodes' marks
    /// are found by polling. Meant for one waiter (the replication loop).
    /// A transaction that marked urgent work and then failed to commit
    /// wakes it too: it looks and finds nothing new.
    pub async fn urgent_marked(&self) {
        self.urgent.notified().await;
    }

    /// On SQLite, what its single writer committed since the store opened:
    /// COMMITs (each one `fsync`) and the write transactions they committed
    /// (group commit: several to a COMMIT under concurrent writes). `None`
    /// on PostgreSQL.
    pub fn writer_counts(&self) -> Option<WriterCounts> {
        let (commits, transactions, held) = self.writer.as_ref()?.counts();
        Some(WriterCounts { commits, transactions, held })
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// What SQLite's single writer committed: see [`Store::writer_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterCounts {
    pub commits: u64,
    pub transactions: u64,
    /// How long transactions held the writer, COMMITs included.
    pub held: std::time::Duration,
}

/// The advisory lock key of the scheduler ("canopy" in ASCII).
const SCHEDULER_LOCK_KEY: i64 = 0x6361_6e6f_7079;

/// Held by the node that runs the scheduler; dropping it releases the lock.
pub struct SchedulerLock {
    conn: Option<sqlx::PgConnection>,
}

impl SchedulerLock {
    /// Give the scheduler up now (a node stopping): the connection that holds
    /// the advisory lock is closed, which releases it on the server at once
    /// rather than when the server notices a dropped socket.
    pub async fn release(self) {
        if let Some(conn) = self.conn
            && let Err(e) = sqlx::Connection::close(conn).await
        {
            // the socket is gone either way, and the lock with the session
            tracing::debug!(error = %e, "closing the scheduler's connection");
        }
    }
}

/// A database transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx {
    inner: Conn,
    /// The history events recorded in this transaction, in recording order;
    /// [`Tx::commit`] appends them to their chains.
    events: Vec<history::Recorded>,
    /// The store methods that changed recorded state in this transaction
    /// (each once): rows of the tables whose every change the history
    /// records. Operational state (sessions, sign-in counters, mails, tenant
    /// work, replication bookkeeping) is not recorded state.
    changed: Vec<&'static str>,
    /// The installation's settings, once read in this transaction.
    settings: Option<InstallationSettings>,
    /// A workspace's own four-eye setting, read with the workspace by
    /// [`Tx::workspace_with_roles`] (a change's first look at it), again by
    /// the workspace's locks (the read that stays current), or set in this
    /// transaction.
    workspace_four_eye: Option<(Uuid, Option<canopy_domain::four_eye::FourEye>)>,
    /// The workspaces whose rows this transaction holds exclusively
    /// (PostgreSQL): locking one again is a statement for nothing, and
    /// waiting for its turn then could deadlock with the turn's holder.
    workspaces_locked: std::collections::BTreeSet<Uuid>,
    /// This transaction marked urgent work; the store's waiter is told at commit.
    urgent_marked: bool,
    urgent: Arc<Notify>,
}

impl Tx {
    /// Append the recorded events to their chains, in the one order every
    /// transaction takes chains in (workspace chains by ascending id, the
    /// installation chain last; each chain's events in recording order),
    /// then commit.
    ///
    /// A transaction that changed recorded state but recorded no event is
    /// rolled back instead, and answers [`StoreError::Unrecorded`]: a change
    /// never commits without its history.
    pub async fn commit(mut self) -> Result<()> {
        if !self.changed.is_empty() && self.events.is_empty() {
            let changed = self.changed.join(", ");
            self.inner.rollback().await?;
            return Err(StoreError::Unrecorded(changed));
        }
        self.append_recorded().await?;
        // told when the commit ends, even if its caller goes away while it
        // waits for its group's COMMIT (a wake-up for nothing costs a look)
        let _wake = self.urgent_marked.then(|| WakeOnDrop(self.urgent.clone()));
        self.inner.commit().await
    }

    /// Remember that the store method `what` changed recorded state, when it
    /// wrote `rows` rows (none: nothing changed).
    pub(crate) fn changed(&mut self, rows: u64, what: &'static str) {
        if rows > 0 && !self.changed.contains(&what) {
            self.changed.push(what);
        }
    }

    /// Whether this transaction is SQLite's one writer: it holds the whole
    /// database, so row locks taken to order concurrent writers (the
    /// `lock_*` methods, for PostgreSQL) would be statements for nothing.
    fn only_writer(&self) -> bool {
        matches!(self.inner, Conn::SqliteWriter(_))
    }

    fn conn(&mut self) -> &mut Conn {
        &mut self.inner
    }
}

/// Wakes the store's waiter for urgent work when dropped.
struct WakeOnDrop(Arc<Notify>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

// ------------------------------------------------------------------ helpers

/// Microseconds since the Unix epoch: how instants are stored.
pub fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub fn from_us(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| StoreError::Corrupt(format!("time {us}: {e}")))
}

/// The id of a new row: a UUID v7, whose leading bits are the system's
/// time in milliseconds (then a counter and random bits), so ids made one
/// after another sort one after another. A new row's id then lands at the
/// end of its primary key's index, in a page the transaction before it
/// already changed, rather than in a random page of it: fewer pages read,
/// changed and written to the log per insert, which the write path pays
/// for (issue 13, BENCHMARKS.md). The time in an id is not the clock's
/// (`now`) and nothing reads it; ids stay opaque. Tenants keep a random id
/// (v4): their names carry eight of its hex digits to tell them apart.
pub(crate) fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Typed access to the columns of a row.
pub(crate) trait RowExt {
    /// A text column, borrowed: for what is parsed rather than kept.
    fn str(&self, col: &str) -> Result<&str>;
    fn str_opt(&self, col: &str) -> Result<Option<&str>>;
    fn text(&self, col: &str) -> Result<String> {
        self.str(col).map(str::to_owned)
    }
    fn text_opt(&self, col: &str) -> Result<Option<String>> {
        Ok(self.str_opt(col)?.map(str::to_owned))
    }
    fn int(&self, col: &str) -> Result<i64>;
    fn int_opt(&self, col: &str) -> Result<Option<i64>>;
    fn real(&self, col: &str) -> Result<f64>;
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>>;
    fn time(&self, col: &str) -> Result<OffsetDateTime>;
    fn time_opt(&self, col: &str) -> Result<Option<OffsetDateTime>>;
    fn parse<T: FromStr>(&self, col: &str) -> Result<T>;
}

fn mismatch(col: &str, want: &str, got: db::ValueRef<'_>) -> StoreError {
    StoreError::Corrupt(format!("column {col:?} is not {want}: {got:?}"))
}

impl RowExt for Row {
    fn str(&self, col: &str) -> Result<&str> {
        match self.value(col)? {
            db::ValueRef::Text(s) => Ok(s),
            other => Err(mismatch(col, "text", other)),
        }
    }
    fn str_opt(&self, col: &str) -> Result<Option<&str>> {
        match self.value(col)? {
            db::ValueRef::Null => Ok(None),
            db::ValueRef::Text(s) => Ok(Some(s)),
            other => Err(mismatch(col, "text", other)),
        }
    }
    fn int(&self, col: &str) -> Result<i64> {
        match self.value(col)? {
            db::ValueRef::Int(i) => Ok(i),
            other => Err(mismatch(col, "an integer", other)),
        }
    }
    fn real(&self, col: &str) -> Result<f64> {
        match self.value(col)? {
            db::ValueRef::Real(r) => Ok(r),
            // SQLite keeps a REAL column's whole numbers as written
            db::ValueRef::Int(i) => Ok(i as f64),
            other => Err(mismatch(col, "a number", other)),
        }
    }
    fn uuid(&self, col: &str) -> Result<Uuid> {
        let s = self.str(col)?;
        Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("{col} {s:?}: {e}")))
    }
    fn uuid_opt(&self, col: &str) -> Result<Option<Uuid>> {
        match self.str_opt(col)? {
            None => Ok(None),
            Some(s) => Uuid::parse_str(s).map(Some).map_err(|e| StoreError::Corrupt(format!("{col} {s:?}: {e}"))),
        }
    }
    fn time(&self, col: &str) -> Result<OffsetDateTime> {
        from_us(self.int(col)?)
    }
    fn int_opt(&self, col: &str) -> Result<Option<i64>> {
        match self.value(col)? {
            db::ValueRef::Null => Ok(None),
            db::ValueRef::Int(i) => Ok(Some(i)),
            other => Err(mismatch(col, "an integer", other)),
        }
    }
    fn time_opt(&self, col: &str) -> Result<Option<OffsetDateTime>> {
        self.int_opt(col)?.map(from_us).transpose()
    }
    fn parse<T: FromStr>(&self, col: &str) -> Result<T> {
        let s = self.str(col)?;
        s.parse().map_err(|_| StoreError::Corrupt(format!("{col} {s:?}")))
    }
}

/// Keyset pagination: fetch one row more than asked to learn whether a next page exists.
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// The write path counts on it (`new_id`): a row made after another
    /// lands after it in its primary key's index.
    #[test]
    fn new_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    }
}
