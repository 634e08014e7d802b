//! Query plans of the statements a test makes the server run (issue 13:
//! "the query plans for the hot paths are checked on both backends").
//!
//! [`Statements`] records the SQL text of every statement the store runs for
//! one server (it reports each as a `canopy_store::query` event); [`query_plan`]
//! asks the database how it would run one. The plans are read without the
//! values the server bound: on SQLite `EXPLAIN QUERY PLAN` (its planner has
//! no statistics here, so values never change a plan); on PostgreSQL the
//! statement is prepared and its generic plan explained, with sequential
//! scans, hash joins and merge joins priced out, so that the plan shows the
//! path through indexes where there is one (on a test's few rows a hash of a
//! whole table looks cheapest), and a table without a usable index still
//! shows `Seq Scan` or a scan of a whole index.

use std::sync::{Arc, Mutex, OnceLock};

use sqlx::{Connection, Row};
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, filter};

/// Every statement the store runs for requests to one server, told apart
/// by the listener address its connection's span names (tests run in
/// parallel in one process), and for the steps a test runs in its
/// [`Statements::scope`].
#[derive(Clone)]
pub struct Statements {
    listener: String,
}

/// The statements recorded in this process, by listener address: only for
/// the listeners a test asked for ([`Statements::of_server`]).
#[derive(Default)]
pub struct Recorded {
    watched: std::collections::BTreeSet<String>,
    statements: Vec<(String, String)>,
}

type Seen = Mutex<Recorded>;

static SEEN: OnceLock<Arc<Seen>> = OnceLock::new();

struct Recorder(Arc<Seen>);

/// The listener address a connection span names.
struct Listener(String);

#[derive(Default)]
struct Fields {
    statement: Option<String>,
    listener: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "db.statement" => self.statement = Some(format!("{value:?}")),
            "listener" => self.listener = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(listener), Some(span)) = (fields.listener, ctx.span(id)) {
            span.extensions_mut().insert(Listener(listener));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(sql) = fields.statement else { return };
        let listener = ctx
            .event_scope(event)
            .and_then(|scope| scope.into_iter().find_map(|s| s.extensions().get::<Listener>().map(|l| l.0.clone())));
        if let (Some(listener), Ok(mut seen)) = (listener, self.0.lock())
            && seen.watched.contains(&listener)
        {
            // the recorded text is the Debug form of a string: undo its quoting
            let sql = serde_json::from_str::<String>(&sql).unwrap_or(sql);
            seen.statements.push((listener, sql.trim().to_owned()));
        }
    }
}

/// Install the process-wide recorder as the global subscriber, before any
/// server starts ([`crate::spawn_app`] does): tracing decides once, at a
/// span's first use, whether anyone listens to it, so a recorder installed
/// after a server accepted its first connection would never see that
/// server's connection spans.
pub fn install() -> &'static Arc<Seen> {
    SEEN.get_or_init(|| {
        let seen = Arc::new(Seen::default());
        let layer = Recorder(seen.clone()).with_filter(
            filter::Targets::new()
                .with_target("canopy_store::query", tracing::Level::TRACE)
                .with_target("canopy_server::listen", tracing::Level::TRACE)
                .with_target("canopy_testkit::plans", tracing::Level::TRACE),
        );
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
        seen
    })
}

impl Statements {
    /// Record from now on the statements run for requests to the server
    /// listening on `listener` (the process-wide recorder is installed as
    /// the global subscriber on first use).
    pub fn of_server(listener: std::net::SocketAddr) -> Statements {
        let listener = listener.to_string();
        if let Ok(mut seen) = install().lock() {
            seen.watched.insert(listener.clone());
            seen.statements.retain(|(l, _)| *l != listener);
        }
        Statements { listener }
    }

    /// A span under which the statements run count as this server's: for
    /// the engine's and the scheduler's steps, which a test drives itself
    /// (`future.instrument(statements.scope())`).
    pub fn scope(&self) -> tracing::Span {
        tracing::trace_span!("steps", listener = %self.listener)
    }

    /// The distinct statements recorded that read (`SELECT`, `WITH`), in
    /// the order first seen.
    pub fn reads(&self) -> Vec<String> {
        self.recorded(&["SELECT", "WITH"])
    }

    /// The distinct statements recorded that read or write rows (`SELECT`,
    /// `WITH`, `INSERT`, `UPDATE`, `DELETE`), in the order first seen.
    pub fn all(&self) -> Vec<String> {
        self.recorded(&["SELECT", "WITH", "INSERT", "UPDATE", "DELETE"])
    }

    fn recorded(&self, kinds: &[&str]) -> Vec<String> {
        let seen: Vec<String> = install()
            .lock()
            .unwrap()
            .statements
            .iter()
            .filter(|(l, _)| *l == self.listener)
            .map(|(_, s)| s.clone())
            .collect();
        let mut out: Vec<String> = Vec::new();
        for sql in seen {
            let head = sql.trim_start().to_ascii_uppercase();
            if kinds.iter().any(|k| head.starts_with(k)) && !out.contains(&sql) {
                out.push(sql);
            }
        }
        out
    }
}

/// How the database at `db_url` would run `sql`: one line per plan node.
pub async fn query_plan(db_url: &str, sql: &str) -> Result<Vec<String>, String> {
    let err = |e: sqlx::Error| format!("{e}");
    if db_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(db_url).await.map_err(err)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&mut conn)
            .await
            .map_err(err)?;
        conn.close().await.map_err(err)?;
        rows.iter().map(|r| r.try_get::<String, _>("detail").map_err(err)).collect()
    } else {
        // The server binds typed values; the recorded text has none, and
        // PostgreSQL cannot infer the type of a parameter first met in
        // `$n IS NULL`. Such parameters are declared text, or bigint where
        // text does not fit (times and limits), one at a time.
        let params = (1..=32).rev().find(|n| sql.contains(&format!("${n}"))).unwrap_or(0);
        let mut types = vec!["unknown"; params];
        let mut last: Option<usize> = None;
        let mut conn = sqlx::PgConnection::connect(db_url).await.map_err(err)?;
        for _ in 0..=(3 * params) {
            let mut tx = conn.begin().await.map_err(err)?;
            for set in [
                "SET LOCAL enable_seqscan = off",
                "SET LOCAL enable_hashjoin = off",
                "SET LOCAL enable_mergejoin = off",
                "SET LOCAL plan_cache_mode = force_generic_plan",
            ] {
                sqlx::query(set).execute(&mut *tx).await.map_err(err)?;
            }
            let declared = if params == 0 { String::new() } else { format!("({})", types.join(", ")) };
            let prepared = sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE canopy_plan{declared} AS {sql}")))
                .execute(&mut *tx)
                .await;
            match prepared {
                Ok(_) => {
                    let args =
                        if params == 0 { String::new() } else { format!("({})", vec!["NULL"; params].join(", ")) };
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE canopy_plan{args}")))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(err)?;
                    tx.rollback().await.map_err(err)?;
                    return rows.iter().map(|r| r.try_get::<String, _>(0).map_err(err)).collect();
                }
                Err(e) => {
                    tx.rollback().await.map_err(err)?;
                    let text = e.to_string();
                    let unknown = text
                        .split("could not determine data type of parameter $")
                        .nth(1)
                        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok());
                    match (unknown, last) {
                        (Some(n), _) if (1..=params).contains(&n) => {
                            types[n - 1] = "text";
                            last = Some(n - 1);
                        }
                        (None, Some(k)) if types[k] == "text" => types[k] = "bigint",
                        _ => return Err(text),
                    }
                }
            }
        }
        Err(format!("could not find the parameter types of {sql}"))
    }
}
