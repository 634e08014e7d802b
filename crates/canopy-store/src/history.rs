//! The history: append-only, hash-chained events (HI1, HI3).

use canopy_domain::history::{BrokenLink, ChainedEvent, EventKind, GENESIS_HASH, Initiator, verify_chain};
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, Store, StoreError, Tx, new_id, page_limit, to_us};

/// The chain of installation-wide events (users, groups, roles, keys).
pub const INSTALLATION_CHAIN: &str = "installation";

/// Filters of a history page (HI2). All are optional.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// The initiator's name (username, key name or job).
    pub initiator: Option<String>,
    pub kind: Option<EventKind>,
    /// Events older than this sequence number (the page cursor).
    pub before_seq: Option<i64>,
}

/// What the verification of every chain found.
#[derive(Debug, Clone)]
pub struct Verification {
    pub chains_checked: u64,
    pub events_checked: u64,
    /// The first broken link, with the chain's label in `chain`.
    pub first_broken: Option<BrokenLink>,
}

const EVENT_COLS: &str =
    "id, chain, seq, kind, at, initiator_kind, initiator_id, initiator_name, details, prev_hash, hash";

fn event_from_row(r: &AnyRow) -> Result<ChainedEvent> {
    Ok(ChainedEvent {
        id: r.text("id")?,
        chain: r.text("chain")?,
        seq: r.int("seq")?,
        kind: r.text("kind")?,
        at_us: r.int("at")?,
        initiator_kind: r.text("initiator_kind")?,
        initiator_id: r.text("initiator_id")?,
        initiator_name: r.text("initiator_name")?,
        details: r.text("details")?,
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

impl Tx {
    pub(crate) async fn create_chain(&mut self, chain: &str, label: &str) -> Result<()> {
        sqlx::query("INSERT INTO history_chains (chain, label, last_seq, last_hash) VALUES ($1, $2, 0, $3)")
            .bind(chain)
            .bind(label)
            .bind(GENESIS_HASH)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Append an event to a workspace's chain (`Some(id)`) or the installation's
    /// (`None`), in this transaction, linked to the chain's last event.
    ///
    /// This locks the chain's head until the transaction ends. A transaction
    /// that appends to several chains must take them in one order, or two
    /// such transactions deadlock on PostgreSQL: workspace chains first, in
    /// ascending workspace id (the order `direct_memberships` returns), and the
    /// installation chain last. Row locks a transaction needs (a user, a
    /// workspace, the admins) are taken before its first append.
    pub async fn append_event(
        &mut self,
        workspace_id: Option<Uuid>,
        kind: EventKind,
        at: OffsetDateTime,
        initiator: &Initiator,
        details: serde_json::Value,
    ) -> Result<ChainedEvent> {
        let chain = workspace_id.map_or_else(|| INSTALLATION_CHAIN.to_owned(), |w| w.to_string());
        // Bumping the head first takes its row lock (PostgreSQL) so appends to
        // one chain are serialised; it returns the new seq and the old hash.
        let head = sqlx::query(
            "UPDATE history_chains SET last_seq = last_seq + 1 WHERE chain = $1 RETURNING last_seq, last_hash",
        )
        .bind(&chain)
        .fetch_optional(self.conn())
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("history chain {chain} is missing")))?;
        let mut event = ChainedEvent {
            id: new_id(),
            chain: chain.clone(),
            seq: head.int("last_seq")?,
            kind: kind.as_str().to_owned(),
            at_us: to_us(at),
            initiator_kind: initiator.kind.as_str().to_owned(),
            initiator_id: initiator.id.clone(),
            initiator_name: initiator.name.clone(),
            details: details.to_string(),
            prev_hash: head.text("last_hash")?,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO history_events ({EVENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(&event.id)
        .bind(&event.chain)
        .bind(event.seq)
        .bind(&event.kind)
        .bind(event.at_us)
        .bind(&event.initiator_kind)
        .bind(&event.initiator_id)
        .bind(&event.initiator_name)
        .bind(&event.details)
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(self.conn())
        .await?;
        sqlx::query("UPDATE history_chains SET last_hash = $2 WHERE chain = $1")
            .bind(&chain)
            .bind(&event.hash)
            .execute(self.conn())
            .await?;
        Ok(event)
    }

    /// A page of a chain's events, newest first.
    pub async fn history(&mut self, chain: &str, f: &HistoryFilter, limit: u32) -> Result<Vec<ChainedEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 \
             AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3) \
             AND ($4 IS NULL OR initiator_name = $4) AND ($5 IS NULL OR kind = $5) \
             AND ($6 IS NULL OR seq < $6) ORDER BY seq DESC LIMIT $7"
        )))
        .bind(chain)
        .bind(f.since.map(to_us))
        .bind(f.until.map(to_us))
        .bind(f.initiator.as_deref())
        .bind(f.kind.map(EventKind::as_str))
        .bind(f.before_seq)
        .bind(page_limit(limit))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn history_event(&mut self, chain: &str, id: &str) -> Result<Option<ChainedEvent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 AND id = $2"
        )))
        .bind(chain)
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }
}

impl Store {
    /// Verify every chain (HI3) and report the first broken link.
    pub async fn verify_history(&self) -> Result<Verification> {
        let mut tx = self.read().await?;
        let heads = sqlx::query("SELECT chain, label, last_seq, last_hash FROM history_chains ORDER BY chain")
            .fetch_all(tx.conn())
            .await?;
        let mut v = Verification { chains_checked: 0, events_checked: 0, first_broken: None };
        for head in &heads {
            let chain = head.text("chain")?;
            let label = head.text("label")?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 ORDER BY seq"
            )))
            .bind(&chain)
            .fetch_all(tx.conn())
            .await?;
            let events = rows.iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
            v.chains_checked += 1;
            match verify_chain(&label, events, (head.int("last_seq")?, &head.text("last_hash")?)) {
                Ok(n) => v.events_checked += n,
                Err(broken) => {
                    v.first_broken = Some(broken);
                    break;
                }
            }
        }
        Ok(v)
    }
}
