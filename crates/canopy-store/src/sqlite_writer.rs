//! SQLite's single writer, with group commit.
//!
//! SQLite lets one transaction write at a time, and with `synchronous =
//! FULL` each COMMIT waits for the write-ahead log to reach the disk. Under
//! concurrent writes that COMMIT, not the statements, is what the writers
//! queue behind (issue 13, BENCHMARKS.md). So the writers of this process
//! share one connection and take turns on it inside one open transaction:
//!
//! - a write transaction ([`WriterTx`]) is a savepoint on that connection,
//!   begun when the one before it let go; the first of a *group* begins the
//!   SQLite transaction itself (`BEGIN IMMEDIATE`) and needs no savepoint,
//!   since nothing else is in that transaction while it runs (a savepoint
//!   costs a copy of every page it changes into its statement journal, so
//!   a writer alone pays nothing for group commit);
//! - when it ends with others waiting for the writer, it releases its
//!   savepoint and leaves the COMMIT to the group: the transaction that
//!   lets go with nobody waiting, a write that goes first (so that it does
//!   not wait for the writers it went before), or the group's 32nd turn
//!   commits every member at once, with one `fsync`;
//! - each member's [`WriterTx::commit`] returns only after that COMMIT, with
//!   its outcome: nothing is answered, or seen by another connection, before
//!   it is durable, as with a COMMIT of its own;
//! - a member that fails or is dropped rolls back to its savepoint, so the
//!   others keep their work; an error that ends SQLite's whole transaction
//!   fails every member of the group, and none is told it committed.
//!
//! Whoever holds the writer when it is let go commits the group if nobody
//! waits for it, and a waiter that gives up (its future dropped) with
//! nobody behind it commits the group it would have joined, so an open group
//! is never left without someone to end it. A member that holds the writer
//! delays the commit of the ones before it by as long as it holds it: a
//! write transaction must not wait on anything but the database (the store
//! has none that does).
//!
//! A member sees the changes of the members before it, which are not yet
//! committed. A member that commits does so together with them, so it
//! never commits on a change that is taken back. A member that fails or is
//! dropped is answered at once: if the group then fails too (only an error
//! of the database itself, such as a full disk or an I/O error, fails a
//! group), that answer may have rested on a change that never committed
//! (a conflict with a row that was never written, say).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::db::{Arg, Row, SqliteConnection, Want, sqlite_run};
use crate::{Result, StoreError};

/// A group takes at most this many turns on the writer (transactions begun
/// in it, committed or not), so the first of a group waits for the work of
/// at most this many less one before the group commits.
const GROUP_MAX: usize = 32;

const SAVEPOINT: &str = "SAVEPOINT canopy_tx";
const RELEASE: &str = "RELEASE canopy_tx";
const ROLLBACK_MEMBER: &str = "ROLLBACK TO canopy_tx";

/// What the members of a group learn when it ends: committed, or why not.
type Outcome = Option<std::result::Result<(), String>>;

/// What the writer has committed since it opened: COMMITs (each one
/// `fsync`) and the transactions they committed. Their ratio is the mean
/// size of a group.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) commits: AtomicU64,
    pub(crate) transactions: AtomicU64,
    /// Nanoseconds the writer was held, from taking it to letting it go
    /// (with the COMMIT a transaction ran as it let go): over a span of
    /// time, how much of it the single writer was busy.
    pub(crate) held_ns: AtomicU64,
}

/// The writer of one SQLite database, shared by the store's clones.
pub(crate) struct SqliteWriter {
    slot: Arc<Mutex<Slot>>,
    counts: Arc<Counts>,
    /// Where ordinary writers queue before the slot, so that at most one of
    /// them waits on it: a write that goes first waits for the one writing
    /// and that one ([`SqliteWriter::begin`]).
    queue: Mutex<()>,
    /// How many writers wait for the slot (on `queue` or on the slot
    /// itself). Read and changed only with this
    /// lock held, and the slot is let go with it held, so that a waiter that
    /// gives up and the holder letting go agree on who commits.
    waiting: StdMutex<usize>,
    /// Set by [`SqliteWriter::close`]: no transaction begins any more, and
    /// the connection is closed when the slot is next let go.
    closed: AtomicBool,
}

struct Slot {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    counts: Arc<Counts>,
    /// The open SQLite transaction and the members that ended in it.
    group: Option<Group>,
}

struct Group {
    /// Members that released their savepoint and wait for the COMMIT.
    members: usize,
    /// Transactions that began in this group, ended or not.
    turns: usize,
    outcome: watch::Sender<Outcome>,
}

impl SqliteWriter {
    /// The writer over `conn`, whose temporary files stay in memory from
    /// now on: every member that joins a group copies each page it changes
    /// into its savepoint's statement journal, and SQLite would move that
    /// journal to a temporary file past 64 KiB (most joiners pass it: a
    /// `pwrite` per page, a tenth of the server's time under writes, B4).
    /// In memory it costs what the member changed, freed when it ends.
    pub(crate) fn new(conn: rusqlite::Connection) -> Result<Arc<SqliteWriter>> {
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let counts = Arc::new(Counts::default());
        Ok(Arc::new(SqliteWriter {
            slot: Arc::new(Mutex::new(Slot {
                conn: Some(SqliteConnection::new(conn)),
                group: None,
                counts: counts.clone(),
            })),
            counts,
            queue: Mutex::new(()),
            waiting: StdMutex::new(0),
            closed: AtomicBool::new(false),
        }))
    }

    /// Begin a write transaction: wait for the writer, then join the open
    /// group or begin one.
    pub(crate) async fn begin(self: &Arc<Self>, first: bool) -> Result<WriterTx> {
        let mut held = self.take(first).await;
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let slot = held.slot()?;
        let conn = slot.conn.as_mut().ok_or_else(closed)?;
        if slot.group.is_some() && conn.is_autocommit() {
            fail(slot, "an error rolled the transaction back");
        }
        let conn = slot.conn.as_mut().ok_or_else(closed)?;
        let opens = slot.group.is_none();
        if opens {
            if !conn.is_autocommit() {
                // a transaction that a failed COMMIT or ROLLBACK left open
                exec(conn, "ROLLBACK")?;
            }
            // take SQLite's write lock at once (waiting out the busy timeout
            // for another process), rather than upgrading a read snapshot
            // later: an upgrade fails at once with "database is locked"
            exec(conn, "BEGIN IMMEDIATE")?;
            slot.group = Some(Group { members: 0, turns: 0, outcome: watch::Sender::new(None) });
        } else {
            exec(conn, SAVEPOINT)?;
        }
        if let Some(group) = slot.group.as_mut() {
            group.turns += 1;
        }
        Ok(WriterTx { held: Some(held), first, opens })
    }

    /// Wait for the slot, counted among the waiters from the start: an
    /// ordinary writer behind at most one other ordinary one (the others
    /// wait on `queue`), one that goes `first` behind only the one writing
    /// and that one.
    async fn take(self: &Arc<Self>, first: bool) -> Held {
        *lock(&self.waiting) += 1;
        let mut counted = Waiter { writer: Some(self.clone()) };
        // Dropped before it takes the slot, this future drops (in reverse
        // order) the slot's lock future, which hands the slot on if it was
        // handed to it, then `queued`, then `counted`: so `gave_up` runs
        // when neither the slot nor the queue is held for this waiter.
        let queued = if first { None } else { Some(self.queue.lock().await) };
        let guard = self.slot.clone().lock_owned().await;
        drop(queued);
        counted.writer = None;
        *lock(&self.waiting) -= 1;
        Held { guard: Some(guard), writer: self.clone(), since: std::time::Instant::now() }
    }

    /// Let the slot go: with writers waiting, to the next of them (the open
    /// group stays open for it, unless it took its last turn); with none,
    /// after ending the open group.
    fn let_go(&self, mut guard: OwnedMutexGuard<Slot>) {
        if self.closed.load(Ordering::Acquire) {
            finish(&mut guard);
            guard.conn = None;
            return;
        }
        let waiting = lock(&self.waiting);
        let open_for_more = guard.group.as_ref().map(|g| g.turns < GROUP_MAX);
        if open_for_more.is_none() || (open_for_more == Some(true) && *waiting > 0) {
            // dropped while `waiting` is held: see `gave_up`
            drop(guard);
            return;
        }
        drop(waiting);
        finish(&mut guard);
    }

    /// A waiter gave up before it took the slot. If it was the last one
    /// waiting and the slot is free, its holder let it go for this waiter
    /// and left an open group to it: end that group now.
    fn gave_up(&self) {
        let mut waiting = lock(&self.waiting);
        *waiting = waiting.saturating_sub(1);
        if *waiting == 0
            && let Ok(mut guard) = self.slot.clone().try_lock_owned()
        {
            // holding the slot settles who commits: others may count in now
            drop(waiting);
            finish(&mut guard);
        }
    }

    /// COMMITs so far, the transactions they committed, and how long the
    /// writer was held.
    pub(crate) fn counts(&self) -> (u64, u64, std::time::Duration) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.transactions.load(Ordering::Relaxed),
            std::time::Duration::from_nanos(self.counts.held_ns.load(Ordering::Relaxed)),
        )
    }

    /// Refuse new transactions, then end the open group (committing what
    /// its members did) and close the connection, once the transaction
    /// holding the writer lets it go (at once if none does; if one holds it
    /// longer than the acquire timeout, when it ends).
    pub(crate) async fn close(self: &Arc<Self>) {
        self.closed.store(true, Ordering::Release);
        // taking the slot and letting it go closes it (`let_go`)
        let _ = tokio::time::timeout(crate::db::ACQUIRE_TIMEOUT, self.take(true)).await;
    }
}

/// Counts a waiter out of the slot's waiters if it gives up before taking it.
struct Waiter {
    writer: Option<Arc<SqliteWriter>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.gave_up();
        }
    }
}

/// The slot, held; let go (see [`SqliteWriter::let_go`]) when dropped.
struct Held {
    guard: Option<OwnedMutexGuard<Slot>>,
    writer: Arc<SqliteWriter>,
    /// When it was taken.
    since: std::time::Instant,
}

impl Held {
    /// The slot (`guard` is taken only when this is dropped).
    fn slot(&mut self) -> Result<&mut Slot> {
        self.guard.as_deref_mut().ok_or_else(lost)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.writer.let_go(guard);
            let held = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.writer.counts.held_ns.fetch_add(held, Ordering::Relaxed);
        }
    }
}

/// A write transaction on SQLite: a savepoint in its group's transaction.
/// Dropped without [`WriterTx::commit`], it rolls back to its savepoint.
pub(crate) struct WriterTx {
    held: Option<Held>,
    /// A write that goes first also commits at once, with the members
    /// before it, rather than after the ones it went before.
    first: bool,
    /// It began its group's SQLite transaction, and so runs in it without a
    /// savepoint: to undo its work is to roll that transaction back.
    opens: bool,
}

impl WriterTx {
    pub(crate) fn run(&mut self, sql: &str, args: &[Arg], want: Want) -> Result<(Vec<Row>, u64)> {
        let held = self.held.as_mut().ok_or_else(lost)?;
        let conn = held.slot()?.conn.as_mut().ok_or_else(closed)?;
        if conn.is_autocommit() {
            // an error ended the transaction (SQLite rolls back on some, such
            // as a full disk): what follows would be committed on its own
            return Err(lost());
        }
        sqlite_run(conn, sql, args, want)
    }

    /// End this transaction in its group and wait for the group's COMMIT.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let mut held = self.held.take().ok_or_else(lost)?;
        let slot = held.slot()?;
        let conn = slot.conn.as_mut().ok_or_else(closed)?;
        if conn.is_autocommit() {
            fail(slot, "an error rolled the transaction back");
            return Err(lost());
        }
        if !self.opens
            && let Err(e) = exec(conn, RELEASE)
        {
            roll_back_member(slot, false);
            return Err(e);
        }
        let Some(group) = slot.group.as_mut() else { return Err(lost()) };
        group.members += 1;
        let mut outcome = group.outcome.subscribe();
        if self.first {
            finish(slot);
        }
        // otherwise committed when let go with nobody waiting, or the group
        // took its last turn
        drop(held);
        let outcome = outcome.wait_for(Option::is_some).await.map_err(|_| closed())?.clone();
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(StoreError::Database(e)),
            None => Err(lost()),
        }
    }
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        if let Some(mut held) = self.held.take()
            && let Ok(slot) = held.slot()
        {
            roll_back_member(slot, self.opens);
        }
    }
}

/// Undo what the member holding the slot did since its savepoint, or, if
/// it `opens` its group (then alone in it), the group's transaction; when
/// that cannot be done, fail its whole group rather than commit a part of it.
fn roll_back_member(slot: &mut Slot, opens: bool) {
    let Some(conn) = slot.conn.as_mut() else { return };
    if conn.is_autocommit() {
        fail(slot, "an error rolled the transaction back");
        return;
    }
    if opens {
        // a ROLLBACK that fails leaves the transaction open: the next group
        // rolls it back before it begins
        let _ = exec(conn, "ROLLBACK");
        fail(slot, "its transaction was rolled back");
        return;
    }
    if let Err(e) = exec(conn, ROLLBACK_MEMBER).and_then(|_| exec(conn, RELEASE)) {
        let _ = exec(conn, "ROLLBACK");
        fail(slot, &format!("rolling back one of its transactions failed: {e}"));
    }
}

/// End the open group: commit it (roll back one with no members) and tell
/// its members how it went.
fn finish(slot: &mut Slot) {
    let Some(group) = slot.group.take() else { return };
    let outcome = match slot.conn.as_mut() {
        None => Err("the database was closed".to_owned()),
        Some(conn) if conn.is_autocommit() => Err("an error rolled the transaction back".to_owned()),
        Some(conn) if group.members == 0 => exec(conn, "ROLLBACK").map_err(|e| e.to_string()),
        Some(conn) => exec(conn, "COMMIT")
            .map(|()| {
                slot.counts.commits.fetch_add(1, Ordering::Relaxed);
                slot.counts.transactions.fetch_add(group.members as u64, Ordering::Relaxed);
            })
            .map_err(|e| {
                if !conn.is_autocommit() {
                    let _ = exec(conn, "ROLLBACK");
                }
                e.to_string()
            }),
    };
    group.outcome.send_replace(Some(outcome));
}

/// The open group's transaction is gone: tell its members.
fn fail(slot: &mut Slot, why: &str) {
    if let Some(group) = slot.group.take() {
        group.outcome.send_replace(Some(Err(why.to_owned())));
    }
}

fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<()> {
    sqlite_run(conn, sql, &[], Want::Changes).map(|_| ())
}

fn lock(waiting: &StdMutex<usize>) -> StdMutexGuard<'_, usize> {
    // the count stays right even if a holder panicked: no step leaves it half-changed
    waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn closed() -> StoreError {
    StoreError::Database("the database is closed".into())
}

fn lost() -> StoreError {
    StoreError::Database("the write transaction was lost before it committed".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::db::open_sqlite;

    /// A writer on a new database file with a table `t (id TEXT)`, and a
    /// connection of its own to read what is committed.
    fn temp_writer() -> (PathBuf, Arc<SqliteWriter>, rusqlite::Connection) {
        let path = std::env::temp_dir().join(format!("canopy-writer-{}.sqlite", uuid::Uuid::new_v4()));
        std::fs::File::create(&path).unwrap();
        let reader = open_sqlite(&path).unwrap();
        reader.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)").unwrap();
        (path.clone(), SqliteWriter::new(open_sqlite(&path).unwrap()).unwrap(), reader)
    }

    fn committed(reader: &rusqlite::Connection) -> Vec<String> {
        let mut stmt = reader.prepare("SELECT id FROM t ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    fn insert(tx: &mut WriterTx, id: &str) -> Result<()> {
        tx.run("INSERT INTO t (id) VALUES ($1)", &[Arg::Text(Some(id.into()))], Want::Changes).map(|_| ())
    }

    async fn until_waiting(writer: &SqliteWriter, n: usize) {
        for _ in 0..1000 {
            if *lock(&writer.waiting) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{n} writers never waited");
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// A writer that inserted "a" (going first or not), and a second one
    /// waiting behind it in its own task, which, once it has the writer,
    /// inserts "b", says so (`inserted`), then waits to be told (`go`)
    /// whether to commit.
    struct Scene {
        path: PathBuf,
        writer: Arc<SqliteWriter>,
        reader: rusqlite::Connection,
        first: WriterTx,
        second: tokio::task::JoinHandle<Result<()>>,
        inserted: tokio::sync::oneshot::Receiver<()>,
        go: tokio::sync::oneshot::Sender<bool>,
    }

    async fn scene(first_goes_first: bool) -> Scene {
        let (path, writer, reader) = temp_writer();
        let mut first = writer.begin(first_goes_first).await.unwrap();
        insert(&mut first, "a").unwrap();
        let (inserted_tx, inserted) = tokio::sync::oneshot::channel();
        let (go, go_rx) = tokio::sync::oneshot::channel::<bool>();
        let behind = writer.clone();
        let second = tokio::spawn(async move {
            let mut tx = behind.begin(false).await?;
            insert(&mut tx, "b")?;
            let _ = inserted_tx.send(());
            if go_rx.await.unwrap() { tx.commit().await } else { Ok(()) }
        });
        until_waiting(&writer, 1).await;
        Scene { path, writer, reader, first, second, inserted, go }
    }

    #[tokio::test]
    async fn group_commit_answers_a_commit_only_once_the_writers_behind_it_committed_with_it() {
        let Scene { path, reader, first, second, inserted, go, .. } = scene(false).await;
        let first = tokio::spawn(first.commit());
        inserted.await.unwrap();
        // the first ended while the second waited: its COMMIT is the group's
        assert!(committed(&reader).is_empty());
        assert!(!first.is_finished());
        go.send(true).unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["a", "b"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_a_write_that_goes_first_commits_without_waiting_for_the_writers_behind_it() {
        let Scene { path, reader, first, second, inserted, go, .. } = scene(true).await;
        tokio::time::timeout(Duration::from_secs(5), first.commit()).await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["a"]);
        inserted.await.unwrap();
        go.send(true).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["a", "b"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_closing_waits_for_the_writer_then_refuses_more() {
        let (path, writer, reader) = temp_writer();
        let mut tx = writer.begin(false).await.unwrap();
        insert(&mut tx, "a").unwrap();
        let closing = writer.clone();
        let closing = tokio::spawn(async move { closing.close().await });
        until_waiting(&writer, 1).await;
        tx.commit().await.unwrap();
        closing.await.unwrap();
        assert_eq!(committed(&reader), ["a"]);
        assert!(matches!(writer.begin(true).await, Err(StoreError::Database(m)) if m.contains("closed")));
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_a_member_dropped_uncommitted_undoes_only_its_own_work() {
        let Scene { path, writer, reader, first, second, inserted, go } = scene(false).await;
        let first = tokio::spawn(first.commit());
        inserted.await.unwrap();
        go.send(false).unwrap();
        second.await.unwrap().unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["a"]);
        // and the writer goes on
        let mut third = writer.begin(true).await.unwrap();
        insert(&mut third, "c").unwrap();
        third.commit().await.unwrap();
        assert_eq!(committed(&reader), ["a", "c"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_the_first_of_a_group_dropped_uncommitted_leaves_the_writer_behind_it_a_new_group() {
        let Scene { path, reader, first, second, inserted, go, .. } = scene(false).await;
        drop(first);
        inserted.await.unwrap();
        go.send(true).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["b"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_only_the_writers_that_join_a_group_run_in_a_savepoint() {
        let (path, writer, reader) = temp_writer();
        let mut opener = writer.begin(false).await.unwrap();
        insert(&mut opener, "a").unwrap();
        // it began the group's transaction: no savepoint to roll back to
        assert!(opener.run(ROLLBACK_MEMBER, &[], Want::Changes).is_err());
        let joiner = writer.clone();
        let joiner = tokio::spawn(async move {
            let mut tx = joiner.begin(false).await?;
            tx.run(ROLLBACK_MEMBER, &[], Want::Changes)?;
            insert(&mut tx, "b")?;
            tx.commit().await
        });
        until_waiting(&writer, 1).await;
        opener.commit().await.unwrap();
        joiner.await.unwrap().unwrap();
        assert_eq!(committed(&reader), ["a", "b"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_the_savepoints_of_joining_writers_are_journalled_in_memory() {
        let (path, writer, _reader) = temp_writer();
        let mut tx = writer.begin(false).await.unwrap();
        let (rows, _) = tx.run("PRAGMA temp_store", &[], Want::Rows).unwrap();
        // 2 = MEMORY (0 is the default, a file)
        assert_eq!(rows.first().map(|r| r.value("temp_store").unwrap()), Some(crate::db::ValueRef::Int(2)));
        drop(tx);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_a_waiter_that_gives_up_leaves_no_group_uncommitted() {
        let (path, writer, reader) = temp_writer();
        let mut first = writer.begin(false).await.unwrap();
        insert(&mut first, "a").unwrap();
        let waiter = writer.clone();
        let waiter = tokio::spawn(async move { waiter.begin(false).await.map(|_| ()) });
        until_waiting(&writer, 1).await;
        // the first ends with a writer waiting, which then goes away
        let first = tokio::spawn(first.commit());
        tokio::task::yield_now().await;
        waiter.abort();
        tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap().unwrap();
        assert_eq!(committed(&reader), ["a"]);
        remove(&path);
    }

    #[tokio::test]
    async fn group_commit_an_error_that_ends_the_transaction_fails_every_member() {
        let (path, writer, reader) = temp_writer();
        let mut first = writer.begin(false).await.unwrap();
        insert(&mut first, "a").unwrap();
        let second = writer.clone();
        let second = tokio::spawn(async move {
            let mut tx = second.begin(false).await.unwrap();
            // what a full disk does: SQLite rolls the whole transaction back
            tx.run("ROLLBACK", &[], Want::Changes).unwrap();
            let after = insert(&mut tx, "b");
            (after, tx.commit().await)
        });
        until_waiting(&writer, 1).await;
        let first = first.commit().await;
        let (after, second) = second.await.unwrap();
        assert!(first.is_err() && after.is_err() && second.is_err(), "{first:?} {after:?} {second:?}");
        assert!(committed(&reader).is_empty());
        remove(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_many_writers_at_once_all_commit() {
        let (path, writer, reader) = temp_writer();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut tx = writer.begin(i % 7 == 0).await?;
                    insert(&mut tx, &format!("{i:03}"))?;
                    if i % 10 == 3 {
                        return Ok(()); // dropped uncommitted
                    }
                    tx.commit().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let rows = committed(&reader);
        assert_eq!(rows.len(), 90);
        let (commits, transactions, held) = writer.counts();
        assert_eq!(transactions, 90);
        assert!(held > std::time::Duration::ZERO);
        assert!((1..=90).contains(&commits), "{commits} commits");
        assert!(rows.iter().all(|id| !id.ends_with('3')));
        writer.close().await;
        assert!(writer.begin(false).await.is_err());
        remove(&path);
    }
}
