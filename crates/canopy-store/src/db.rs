//! The one way the store runs SQL, on either backend.
//!
//! Every repository builds its statement once, in portable SQL with `$N`
//! placeholders, binds its values and runs it through [`query`]; the driver
//! underneath is chosen by the backend:
//!
//! - **SQLite** through `rusqlite`, called on the task that runs the
//!   transaction. SQLite is a library, not a server: a statement costs it
//!   microseconds, and a driver that hands each one to a thread of its own
//!   (sqlx's) spends more on the two thread wake-ups of that hand-off than
//!   SQLite spends on the statement, all of it inside the single writer on
//!   the write path (issue 13, BENCHMARKS.md). Statements are prepared once
//!   per connection and cached, with their shapes ([`SqliteConnection`]).
//!   A read transaction's connection is taken from a small pool of its own
//!   ([`SqlitePool`]) and rolled back at once when it is dropped; write
//!   transactions take turns on the writer's own connection
//!   (`crate::sqlite_writer`, group commit).
//! - **PostgreSQL** through sqlx's typed PostgreSQL driver (the server's
//!   round trip is the cost there; sqlx's pool and TLS are kept).
//!
//! Rows come back in one shape ([`Row`]: a value per column, read by name
//! through [`crate::RowExt`]), so a repository never knows which backend
//! answered. Migrations stay sqlx's (one folder for both backends).
//!
//! Each statement is logged at `debug` under the target `canopy_store::query`
//! with its SQL (`db.statement`), which the query-plan tests read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column, Postgres, Row as _, TypeInfo, ValueRef as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Result, StoreError};

/// How long a request waits for a free connection before it fails.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// A PostgreSQL connection idle this long is pinged before it is used.
pub(crate) const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long SQLite waits for a lock another process holds (this process's
/// writers queue on the store's own lock first).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per SQLite connection: more than the store
/// has distinct statements on its hot paths.
const SQLITE_STATEMENT_CACHE: usize = 512;

/// A value bound to a statement. A null keeps its type, which PostgreSQL
/// needs to choose the parameter's type.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// What can be bound: the types the schema stores (BIGINT, TEXT, DOUBLE
/// PRECISION, bytes) and options of them.
pub(crate) trait IntoArg {
    fn into_arg(self) -> Arg;
}

/// The typed null of a bindable type.
pub(crate) trait NullOf {
    fn null() -> Arg;
}

/// `IntoArg` and `NullOf` for a type: the variant it binds as, and how.
macro_rules! bindable {
    ($($ty:ty => $variant:ident, |$v:ident| $into:expr;)*) => {$(
        impl IntoArg for $ty {
            fn into_arg(self) -> Arg {
                let $v = self;
                Arg::$variant(Some($into))
            }
        }
        impl NullOf for $ty {
            fn null() -> Arg {
                Arg::$variant(None)
            }
        }
    )*};
}

bindable! {
    i64 => Int, |v| v;
    i32 => Int, |v| i64::from(v);
    u32 => Int, |v| i64::from(v);
    f64 => Real, |v| v;
    String => Text, |v| v;
    &str => Text, |v| v.to_owned();
    &String => Text, |v| v.clone();
    Vec<u8> => Blob, |v| v;
    &[u8] => Blob, |v| v.to_vec();
}

impl<T: IntoArg + NullOf> IntoArg for Option<T> {
    fn into_arg(self) -> Arg {
        match self {
            Some(v) => v.into_arg(),
            None => T::null(),
        }
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Int(Some(v)) => V::Integer(*v),
            Arg::Real(Some(v)) => V::Real(*v),
            Arg::Text(Some(v)) => V::Text(v.as_bytes()),
            Arg::Blob(Some(v)) => V::Blob(v),
            Arg::Int(None) | Arg::Real(None) | Arg::Text(None) | Arg::Blob(None) => V::Null,
        }))
    }
}

/// A value read from a row: a text is where it lies in the row's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(std::ops::Range<usize>),
    Blob(Vec<u8>),
}

/// A value of a row as a repository reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// One row of a result: its values by column, the column names shared by
/// every row of the result. The row's texts lie end to end in one string,
/// so that reading a row allocates twice whatever its columns (a page of
/// bindings reads a dozen texts a row).
#[derive(Debug)]
pub struct Row {
    names: Arc<[Box<str>]>,
    values: Vec<Value>,
    text: String,
    /// The column after the one read last: repositories read a row's
    /// columns mostly in the order they selected them, so the name looked
    /// for is usually this one and the search over the names is skipped.
    next: AtomicUsize,
}

impl Clone for Row {
    fn clone(&self) -> Row {
        Row {
            names: self.names.clone(),
            values: self.values.clone(),
            text: self.text.clone(),
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed)),
        }
    }
}

impl Row {
    /// The value of the column named `col`.
    pub(crate) fn value(&self, col: &str) -> Result<ValueRef<'_>> {
        let guess = self.next.load(Ordering::Relaxed);
        let at = if self.names.get(guess).is_some_and(|n| &**n == col) {
            Some(guess)
        } else {
            self.names.iter().position(|n| &**n == col)
        };
        let v = at
            .and_then(|i| {
                self.next.store(i + 1, Ordering::Relaxed);
                self.values.get(i)
            })
            .ok_or_else(|| StoreError::Corrupt(format!("no column {col:?} in the result")))?;
        Ok(match v {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(at) => ValueRef::Text(
                self.text.get(at.clone()).ok_or_else(|| StoreError::Corrupt(format!("column {col:?} is cut")))?,
            ),
            Value::Blob(b) => ValueRef::Blob(b),
        })
    }
}

/// A row being read: its values, its texts appended to one string.
struct RowBuilder {
    values: Vec<Value>,
    text: String,
}

impl RowBuilder {
    fn new(columns: usize, text_hint: usize) -> RowBuilder {
        RowBuilder { values: Vec::with_capacity(columns), text: String::with_capacity(text_hint) }
    }

    fn push(&mut self, v: Value) {
        self.values.push(v);
    }

    fn push_text(&mut self, s: &str) {
        let start = self.text.len();
        self.text.push_str(s);
        self.values.push(Value::Text(start..self.text.len()));
    }

    fn finish(self, names: &Arc<[Box<str>]>) -> Row {
        Row { names: names.clone(), values: self.values, text: self.text, next: AtomicUsize::new(0) }
    }
}

/// What a statement that writes reports.
#[derive(Debug)]
pub(crate) struct Done {
    rows_affected: u64,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// A statement with its bound values, not yet run.
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

/// A statement in portable SQL with `$1`, `$2`, ... placeholders.
pub(crate) fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query { sql: sql.into(), args: Vec::new() }
}

/// Where a statement runs: a connection (in or out of a transaction) or
/// the pool (any free connection, for one statement).
pub(crate) enum On<'a> {
    Conn(&'a mut Conn),
    Pool(&'a Pool),
}

impl<'a> From<&'a mut Conn> for On<'a> {
    fn from(c: &'a mut Conn) -> Self {
        On::Conn(c)
    }
}

impl<'a> From<&'a Pool> for On<'a> {
    fn from(p: &'a Pool) -> Self {
        On::Pool(p)
    }
}

/// What a statement is run for.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Want {
    Rows,
    Changes,
}

impl Query {
    pub(crate) fn bind(mut self, value: impl IntoArg) -> Self {
        self.args.push(value.into_arg());
        self
    }

    pub(crate) async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<Done> {
        let (_, rows_affected) = self.run(on.into(), Want::Changes).await?;
        Ok(Done { rows_affected })
    }

    pub(crate) async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<Row>> {
        Ok(self.run(on.into(), Want::Rows).await?.0)
    }

    pub(crate) async fn fetch_optional<'a>(self, on: impl Into<On<'a>>) -> Result<Option<Row>> {
        Ok(self.run(on.into(), Want::Rows).await?.0.into_iter().next())
    }

    pub(crate) async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::Database("a statement that must answer one row answered none".into()))
    }

    async fn run(self, on: On<'_>, want: Want) -> Result<(Vec<Row>, u64)> {
        let started = Instant::now();
        let out = match on {
            On::Conn(conn) => conn.run(&self.sql, &self.args, want).await,
            On::Pool(pool) => pool.acquire().await?.run(&self.sql, &self.args, want).await,
        };
        let (statement, elapsed_us) = (&*self.sql, started.elapsed().as_micros() as u64);
        let rows = out.as_ref().map(|(rows, changed)| rows.len() as u64 + changed).unwrap_or(0);
        tracing::debug!(target: "canopy_store::query", rows = rows, elapsed_us = elapsed_us, db.statement = statement);
        out
    }
}

/// A connection: SQLite's (possibly in a transaction), or PostgreSQL's in
/// a transaction or on its own.
pub(crate) enum Conn {
    Sqlite(SqliteConn),
    /// SQLite's one writer, in a transaction of a commit group.
    SqliteWriter(crate::sqlite_writer::WriterTx),
    PgTx(sqlx::Transaction<'static, Postgres>),
    Pg(sqlx::pool::PoolConnection<Postgres>),
}

impl Conn {
    async fn run(&mut self, sql: &str, args: &[Arg], want: Want) -> Result<(Vec<Row>, u64)> {
        match self {
            Conn::Sqlite(c) => c.run(sql, args, want),
            Conn::SqliteWriter(w) => w.run(sql, args, want),
            Conn::PgTx(tx) => pg_run(tx, sql, args, want).await,
            Conn::Pg(c) => pg_run(c, sql, args, want).await,
        }
    }

    /// Commit the transaction this connection is in.
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Conn::Sqlite(mut c) => c.run("COMMIT", &[], Want::Changes).map(|_| ()),
            Conn::SqliteWriter(w) => w.commit().await,
            Conn::PgTx(tx) => Ok(tx.commit().await?),
            Conn::Pg(_) => Ok(()),
        }
    }

    /// Roll back the transaction this connection is in.
    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            Conn::Sqlite(mut c) => c.run("ROLLBACK", &[], Want::Changes).map(|_| ()),
            // its savepoint is rolled back when it is let go
            Conn::SqliteWriter(w) => {
                drop(w);
                Ok(())
            }
            Conn::PgTx(tx) => Ok(tx.rollback().await?),
            Conn::Pg(_) => Ok(()),
        }
    }
}

async fn pg_run(conn: &mut sqlx::PgConnection, sql: &str, args: &[Arg], want: Want) -> Result<(Vec<Row>, u64)> {
    let mut q = sqlx::query::<Postgres>(sqlx::AssertSqlSafe(sql));
    for a in args {
        q = match a.clone() {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
        };
    }
    if want == Want::Changes {
        return Ok((Vec::new(), q.execute(conn).await?.rows_affected()));
    }
    let rows = q.fetch_all(conn).await?;
    let Some(first) = rows.first() else { return Ok((Vec::new(), 0)) };
    let names: Arc<[Box<str>]> = first.columns().iter().map(|c| Box::from(c.name())).collect();
    let rows = rows.iter().map(|r| pg_row(r, &names)).collect::<Result<Vec<_>>>()?;
    Ok((rows, 0))
}

fn pg_row(row: &PgRow, names: &Arc<[Box<str>]>) -> Result<Row> {
    let mut out = RowBuilder::new(names.len(), 0);
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = raw.type_info().name().to_owned();
        match ty.as_str() {
            "INT8" => out.push(Value::Int(row.try_get::<i64, _>(i)?)),
            "INT4" => out.push(Value::Int(i64::from(row.try_get::<i32, _>(i)?))),
            "INT2" => out.push(Value::Int(i64::from(row.try_get::<i16, _>(i)?))),
            "BOOL" => out.push(Value::Int(i64::from(row.try_get::<bool, _>(i)?))),
            "FLOAT8" => out.push(Value::Real(row.try_get::<f64, _>(i)?)),
            "FLOAT4" => out.push(Value::Real(f64::from(row.try_get::<f32, _>(i)?))),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" => out.push_text(row.try_get::<&str, _>(i)?),
            "BYTEA" => out.push(Value::Blob(row.try_get::<Vec<u8>, _>(i)?)),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "column {:?} has type {other}, which the store does not read",
                    col.name()
                )));
            }
        }
    }
    Ok(out.finish(names))
}

/// The connections of one backend.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// A connection out of any transaction.
    pub(crate) async fn acquire(&self) -> Result<Conn> {
        match self {
            Pool::Sqlite(p) => Ok(Conn::Sqlite(p.acquire().await?)),
            Pool::Postgres(p) => Ok(Conn::Pg(p.acquire().await?)),
        }
    }

    /// A connection in a new transaction begun with `begin`, a statement of
    /// the pool's dialect (`BEGIN IMMEDIATE` on SQLite; an isolation level
    /// on PostgreSQL, in the same round trip).
    pub(crate) async fn begin(&self, begin: &'static str) -> Result<Conn> {
        match self {
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await?;
                conn.run(begin, &[], Want::Changes)?;
                Ok(Conn::Sqlite(conn))
            }
            Pool::Postgres(p) => Ok(Conn::PgTx(p.begin_with(begin).await?)),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// SQLite connections to one database file, at most `size` in use at once.
#[derive(Clone)]
pub(crate) struct SqlitePool(Arc<SqliteShared>);

struct SqliteShared {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    size: u32,
}

impl SqlitePool {
    /// A pool of up to `size` connections to the file at `path`, one of
    /// them opened now (so a file that cannot be opened fails at start).
    pub(crate) fn open(path: PathBuf, size: u32) -> Result<SqlitePool> {
        let first = SqliteConnection::new(open_sqlite(&path)?);
        Ok(SqlitePool(Arc::new(SqliteShared {
            path,
            idle: std::sync::Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(size as usize)),
            size,
        })))
    }

    async fn acquire(&self) -> Result<SqliteConn> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.0.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Database("timed out waiting for a free database connection".into()))?
            .map_err(|_| StoreError::Database("the database is closed".into()))?;
        let idle = self.0.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => SqliteConnection::new(open_sqlite(&self.0.path)?),
        };
        Ok(SqliteConn { conn: std::sync::Mutex::new(Some(conn)), shared: self.0.clone(), _permit: permit })
    }

    /// Wait for the connections in use to be given back (up to the acquire
    /// timeout, as sqlx's pool waits for its own), then refuse new ones and
    /// close them all: once this returns, nothing of this pool has the file
    /// open.
    async fn close(&self) {
        let all = self.0.permits.clone().acquire_many_owned(self.0.size);
        let held = tokio::time::timeout(ACQUIRE_TIMEOUT, all).await;
        self.0.permits.close();
        if let Ok(mut idle) = self.0.idle.lock() {
            idle.clear();
        }
        drop(held);
    }
}

pub(crate) fn open_sqlite(path: &std::path::Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    // WAL: readers see a snapshot and never wait for the writer
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // `synchronous` stays FULL (the default): every commit is on disk
    // before it is answered or seen by another transaction, so a power loss
    // never takes back a revocation or a history event that was confirmed,
    // or one the engine already acted on. NORMAL measured 42 % more binding
    // writes (B4, BENCHMARKS.md), and is not worth that.
    // No `mmap_size`: reading the file through a map measured 28 % more
    // pages a second, but its pages count in the process's resident memory
    // (B6: 93.5 against 67.5 MiB at 100,000 bindings) and an I/O error on
    // it is a signal, not an error (SQLite's documentation).
    conn.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
    Ok(conn)
}

/// A SQLite connection taken from its pool, given back when dropped (rolled
/// back first if a transaction is still open on it).
pub(crate) struct SqliteConn {
    /// Behind a mutex only so that the connection may be shared between
    /// threads by reference (`rusqlite::Connection` is `Send`, not `Sync`);
    /// it is reached through `get_mut`, which takes no lock.
    conn: std::sync::Mutex<Option<SqliteConnection>>,
    shared: Arc<SqliteShared>,
    _permit: OwnedSemaphorePermit,
}

impl SqliteConn {
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        match self.conn.get_mut() {
            Ok(Some(conn)) => Ok(conn),
            _ => Err(StoreError::Database("the database connection was lost".into())),
        }
    }

    fn run(&mut self, sql: &str, args: &[Arg], want: Want) -> Result<(Vec<Row>, u64)> {
        sqlite_run(self.conn()?, sql, args, want)
    }
}

/// A SQLite connection, with the shape of each statement it has run: the
/// names of its columns and which value each `$N` placeholder takes. They
/// are learnt once per statement, as the statement itself is prepared once
/// (rusqlite's cache): reading them again at every run cost an allocation
/// a column, more than SQLite spends on a lookup by primary key (issue 13).
pub(crate) struct SqliteConnection {
    raw: rusqlite::Connection,
    shapes: HashMap<Box<str>, Arc<Shape>, foldhash::fast::RandomState>,
}

/// What [`sqlite_run`] needs to know of a prepared statement.
struct Shape {
    /// Its columns' names, shared by every row it reads.
    names: Arc<[Box<str>]>,
    /// For each placeholder in order, the index of the value it takes.
    args: Box<[usize]>,
    readonly: bool,
}

impl Shape {
    fn of(stmt: &rusqlite::Statement<'_>, sql: &str) -> Result<Shape> {
        let args = (1..=stmt.parameter_count())
            .map(|i| {
                // `$N` names the N-th value, wherever and however often it appears
                let n = match stmt.parameter_name(i) {
                    Some(name) => name.strip_prefix(['$', '?']).and_then(|n| n.parse::<usize>().ok()),
                    None => Some(i),
                };
                n.and_then(|n| n.checked_sub(1))
                    .ok_or_else(|| StoreError::Database(format!("unsupported parameter {i} in {sql}")))
            })
            .collect::<Result<_>>()?;
        let names =
            (0..stmt.column_count()).map(|i| stmt.column_name(i).map(Box::from)).collect::<rusqlite::Result<_>>()?;
        Ok(Shape { names, args, readonly: stmt.readonly() })
    }

    /// Whether this is still the shape of `stmt` (SQLite prepares a cached
    /// statement again after the schema changed, which may change its
    /// columns).
    fn fits(&self, stmt: &rusqlite::Statement<'_>) -> bool {
        self.names.len() == stmt.column_count() && self.args.len() == stmt.parameter_count()
    }
}

impl SqliteConnection {
    pub(crate) fn new(raw: rusqlite::Connection) -> SqliteConnection {
        SqliteConnection { raw, shapes: HashMap::default() }
    }
}

impl Deref for SqliteConnection {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.raw
    }
}

impl DerefMut for SqliteConnection {
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.raw
    }
}

/// Run one statement on a SQLite connection: bind `args` to its `$N`
/// placeholders, and read its rows (`Want::Rows`) or count the rows it
/// changed (`Want::Changes`).
pub(crate) fn sqlite_run(conn: &mut SqliteConnection, sql: &str, args: &[Arg], want: Want) -> Result<(Vec<Row>, u64)> {
    let SqliteConnection { raw, shapes } = conn;
    let mut stmt = raw.prepare_cached(sql)?;
    let shape = match shapes.get(sql).filter(|s| s.fits(&stmt)) {
        Some(shape) => shape.clone(),
        None => {
            let shape = Arc::new(Shape::of(&stmt, sql)?);
            // as many shapes as statements are cached: statements built
            // with a list of values take one per length of the list
            if shapes.len() >= SQLITE_STATEMENT_CACHE {
                shapes.clear();
            }
            shapes.insert(sql.into(), shape.clone());
            shape
        }
    };
    for (i, n) in shape.args.iter().enumerate() {
        let arg = args
            .get(*n)
            .ok_or_else(|| StoreError::Database(format!("no value bound for parameter {} of {sql}", n + 1)))?;
        stmt.raw_bind_parameter(i + 1, arg)?;
    }
    let mut names = shape.names.clone();
    let mut columns = names.len();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    // the texts of the row before: how much the next row's string reserves
    let mut text_hint = 0;
    while let Some(row) = rows.next()? {
        if want == Want::Changes {
            continue;
        }
        if out.is_empty() && row.as_ref().column_count() != columns {
            // the schema changed since the statement's shape was learnt:
            // SQLite prepared it again as it stepped (a `SELECT *`)
            let again = Shape::of(row.as_ref(), sql)?;
            (names, columns) = (again.names.clone(), again.names.len());
            shapes.insert(sql.into(), Arc::new(again));
        }
        let mut values = RowBuilder::new(columns, text_hint);
        for i in 0..columns {
            use rusqlite::types::ValueRef as V;
            match row.get_ref(i)? {
                V::Null => values.push(Value::Null),
                V::Integer(v) => values.push(Value::Int(v)),
                V::Real(v) => values.push(Value::Real(v)),
                V::Text(v) => values.push_text(
                    std::str::from_utf8(v)
                        .map_err(|_| StoreError::Corrupt(format!("column {:?} is not UTF-8", names.get(i))))?,
                ),
                V::Blob(v) => values.push(Value::Blob(v.to_vec())),
            }
        }
        text_hint = values.text.len();
        out.push(values.finish(&names));
    }
    drop(rows);
    drop(stmt);
    let changed = if shape.readonly { 0 } else { raw.changes() };
    Ok((out, changed))
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        let Ok(slot) = self.conn.get_mut() else { return };
        let Some(conn) = slot.take() else { return };
        // every read transaction ends here: its ROLLBACK is prepared once per
        // connection, not parsed again each time (as execute_batch would)
        if !conn.is_autocommit() && conn.prepare_cached("ROLLBACK").and_then(|mut end| end.execute([])).is_err() {
            // a connection whose transaction cannot end is not reused
            return;
        }
        if self.shared.permits.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.shared.idle.lock() {
            idle.push(conn);
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        if let rusqlite::Error::SqliteFailure(err, _) = &e {
            match err.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => return StoreError::Conflict,
                // what a row refers to was deleted by a concurrent transaction
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::Conflict,
                _ => {}
            }
        }
        StoreError::Database(e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::RowExt;

    /// A pool of `size` connections to a new database file.
    fn temp_pool(size: u32) -> (PathBuf, Pool) {
        let path = std::env::temp_dir().join(format!("canopy-db-{}.sqlite", uuid::Uuid::new_v4()));
        std::fs::File::create(&path).unwrap();
        let pool = Pool::Sqlite(SqlitePool::open(path.clone(), size).unwrap());
        (path, pool)
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn sqlite_placeholders_bind_by_number_wherever_they_appear() {
        let (path, pool) = temp_pool(2);
        let row = query("SELECT $2 AS a, $1 AS b, $1 || $2 AS c, $3 AS d")
            .bind("one")
            .bind("two")
            .bind(None::<i64>)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.text("a").unwrap(), "two");
        assert_eq!(row.text("b").unwrap(), "one");
        assert_eq!(row.text("c").unwrap(), "onetwo");
        assert_eq!(row.int_opt("d").unwrap(), None);
        assert!(matches!(row.int("a"), Err(StoreError::Corrupt(_))));
        assert!(matches!(row.text("missing"), Err(StoreError::Corrupt(_))));
        // a value missing for a placeholder is an error, not a panic
        let err = query("SELECT $2 AS a").bind(1_i64).fetch_one(&pool).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        pool.close().await;
        remove(&path);
    }

    #[tokio::test]
    async fn sqlite_a_row_keeps_its_texts_in_one_string_and_reads_columns_in_any_order() {
        let (path, pool) = temp_pool(1);
        let row = query("SELECT $1 AS a, NULL AS n, $2 AS b, 7 AS i, '' AS e, $3 AS c")
            .bind("één")
            .bind("two")
            .bind("drei ✓")
            .fetch_one(&pool)
            .await
            .unwrap();
        // in order, out of order, twice, and after a miss
        assert_eq!(row.str("a").unwrap(), "één");
        assert_eq!(row.str_opt("n").unwrap(), None);
        assert_eq!(row.str("c").unwrap(), "drei ✓");
        assert_eq!(row.str("b").unwrap(), "two");
        assert_eq!(row.str("b").unwrap(), "two");
        assert!(matches!(row.str("missing"), Err(StoreError::Corrupt(_))));
        assert_eq!(row.int("i").unwrap(), 7);
        assert_eq!(row.str("e").unwrap(), "");
        assert_eq!(row.clone().str("a").unwrap(), "één");
        pool.close().await;
        remove(&path);
    }

    #[tokio::test]
    async fn sqlite_a_statement_run_again_keeps_its_shape_and_learns_a_new_one_after_the_schema_changed() {
        let (path, pool) = temp_pool(1);
        let mut conn = pool.acquire().await.unwrap();
        query("CREATE TABLE t (a TEXT, b TEXT)").execute(&mut conn).await.unwrap();
        query("INSERT INTO t (a, b) VALUES ($2, $1)").bind("B").bind("A").execute(&mut conn).await.unwrap();
        // the same text, run again with other values, binds them in its order
        query("INSERT INTO t (a, b) VALUES ($2, $1)").bind("b").bind("a").execute(&mut conn).await.unwrap();
        let read = || query("SELECT * FROM t ORDER BY a");
        let rows = read().fetch_all(&mut conn).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.str("a").unwrap(), r.str("b").unwrap())).collect::<Vec<_>>(),
            [("A", "B"), ("a", "b")]
        );
        // SQLite prepares the cached `SELECT *` again with a third column
        query("ALTER TABLE t ADD COLUMN c TEXT").execute(&mut conn).await.unwrap();
        query("UPDATE t SET c = a || b").execute(&mut conn).await.unwrap();
        let rows = read().fetch_all(&mut conn).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.str("c").unwrap()).collect::<Vec<_>>(), ["AB", "ab"]);
        drop(conn);
        pool.close().await;
        remove(&path);
    }

    #[tokio::test]
    async fn sqlite_a_dropped_transaction_rolls_back_and_a_unique_violation_is_a_conflict() {
        let (path, pool) = temp_pool(1);
        let mut conn = pool.acquire().await.unwrap();
        query("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT)").execute(&mut conn).await.unwrap();
        drop(conn);
        let mut tx = pool.begin("BEGIN IMMEDIATE").await.unwrap();
        let done = query("INSERT INTO t (id, n) VALUES ($1, $2)").bind("a").bind(1_i64).execute(&mut tx).await.unwrap();
        assert_eq!(done.rows_affected(), 1);
        drop(tx);
        // the pool's one connection came back, out of its transaction
        let rows = query("SELECT id FROM t").fetch_all(&pool).await.unwrap();
        assert!(rows.is_empty());
        let mut tx = pool.begin("BEGIN IMMEDIATE").await.unwrap();
        query("INSERT INTO t (id, n) VALUES ($1, $2)").bind("a").bind(1_i64).execute(&mut tx).await.unwrap();
        let err =
            query("INSERT INTO t (id, n) VALUES ($1, $2)").bind("a").bind(2_i64).execute(&mut tx).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        tx.commit().await.unwrap();
        let done = query("UPDATE t SET n = n + 1").execute(&pool).await.unwrap();
        assert_eq!(done.rows_affected(), 1);
        let row = query("SELECT n FROM t WHERE id = $1").bind("a").fetch_one(&pool).await.unwrap();
        assert_eq!(row.int("n").unwrap(), 2);
        pool.close().await;
        remove(&path);
    }

    #[tokio::test]
    async fn sqlite_close_waits_for_the_connections_in_use_then_refuses_more() {
        let (path, pool) = temp_pool(2);
        let held = pool.begin("BEGIN").await.unwrap();
        let given_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = given_back.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(held);
        });
        pool.close().await;
        assert!(given_back.load(std::sync::atomic::Ordering::SeqCst), "close returned with a connection in use");
        let err = query("SELECT 1 AS one").fetch_one(&pool).await.unwrap_err();
        assert!(matches!(err, StoreError::Database(ref m) if m.contains("closed")), "{err:?}");
        remove(&path);
    }
}
