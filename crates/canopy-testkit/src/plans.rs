//! Query plans of the statements a test makes the server run (issue 13:
//! "the query plans for the hot paths are checked on both backends").
//!
//! [`Statements`] records the SQL text of every statement sqlx runs in this
//! process (sqlx reports each as a `sqlx::query` event); [`query_plan`]
//! asks the database how it would run one. The plans are read without the
//! values the server bound: on SQLite `EXPLAIN QUERY PLAN` (its planner has
//! no statistics here, so values never change a plan); on PostgreSQL the
//! statement is prepared and its generic plan explained, with sequential
//! scans priced out (`enable_seqscan = off`), so a table without a usable
//! index still shows `Seq Scan` while one with an index shows it.

use std::sync::{Arc, Mutex, OnceLock};

use sqlx::{Connection, Row};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, filter};

/// Every statement sqlx ran in this process since [`Statements::start`].
#[derive(Clone, Default)]
pub struct Statements(Arc<Mutex<Option<Vec<String>>>>);

static RECORDER: OnceLock<Statements> = OnceLock::new();

struct Recorder(Statements);

struct StatementField(Option<String>);

impl Visit for StatementField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "db.statement" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut field = StatementField(None);
        event.record(&mut field);
        if let (Some(sql), Ok(mut seen)) = (field.0, (self.0).0.lock())
            && let Some(seen) = seen.as_mut()
        {
            seen.push(sql.trim().to_owned());
        }
    }
}

impl Statements {
    /// The process's recorder (installed as the global subscriber on first
    /// use), recording from now on; what it held before is dropped.
    pub fn start() -> Statements {
        let recorder = RECORDER.get_or_init(|| {
            let s = Statements::default();
            let layer = Recorder(s.clone())
                .with_filter(filter::Targets::new().with_target("sqlx::query", tracing::Level::TRACE));
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
            s
        });
        if let Ok(mut seen) = recorder.0.lock() {
            *seen = Some(Vec::new());
        }
        recorder.clone()
    }

    /// The distinct statements recorded since [`Statements::start`] that
    /// read (`SELECT`, `WITH`), in the order first seen.
    pub fn reads(&self) -> Vec<String> {
        let seen = self.0.lock().unwrap().clone().unwrap_or_default();
        let mut out: Vec<String> = Vec::new();
        for sql in seen {
            let head = sql.trim_start().to_ascii_uppercase();
            if (head.starts_with("SELECT") || head.starts_with("WITH")) && !out.contains(&sql) {
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
            for set in ["SET LOCAL enable_seqscan = off", "SET LOCAL plan_cache_mode = force_generic_plan"] {
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
