//! The history: append-only, hash-chained events (HI1, HI3).

use std::collections::{BTreeMap, BTreeSet};

use crate::db::Row;
use canopy_domain::checkpoint::{ChainAt, ChainHead, Checkpoint, PublicKey, check_checkpoint_at};
use canopy_domain::events::{Event, HistoryChainCreated};
use canopy_domain::history::{
    BrokenLink, ChainVerifier, ChainedEvent, EventKind, GENESIS_HASH, HistoryProblem, Initiator, created_chain,
    missing_chains,
};
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
    /// Events of the chains whose every link holds.
    pub events_checked: u64,
    /// Checkpoints given to check.
    pub checkpoints_checked: u64,
    /// Everything found wrong: per chain (in id order) its first broken link
    /// and the checkpoints of it that do not hold, then the chains that are
    /// missing, then the checkpoints of chains that are gone.
    pub problems: Vec<HistoryProblem>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An event recorded in a transaction, appended to its chain at commit.
pub(crate) struct Recorded {
    workspace_id: Option<Uuid>,
    kind: EventKind,
    at: OffsetDateTime,
    initiator: Initiator,
    /// The details, serialised at commit (object keys in sorted order).
    details: serde_json::Value,
}

/// The system job that records chains made before their creation was recorded.
pub const HISTORY_JOB: &str = "history";

macro_rules! event_cols {
    () => {
        "id, chain, seq, kind, at, initiator_kind, initiator_id, initiator_name, details, prev_hash, hash"
    };
}

macro_rules! insert_event {
    () => {
        concat!(
            "INSERT INTO history_events (",
            event_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
    };
}

const EVENT_COLS: &str = event_cols!();

/// One event appended to its chain (`$2`), linked by `$10` and hashed `$11`.
const INSERT_EVENT: &str = insert_event!();

/// [`INSERT_EVENT`], and the chain's head moved to the event's hash, in one
/// statement (PostgreSQL's data-modifying `WITH`).
const INSERT_EVENT_AND_HEAD: &str =
    concat!("WITH event AS (", insert_event!(), ") UPDATE history_chains SET last_hash = $11 WHERE chain = $2");

fn event_from_row(r: &Row) -> Result<ChainedEvent> {
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
        crate::db::query("INSERT INTO history_chains (chain, label, last_seq, last_hash) VALUES ($1, $2, 0, $3)")
            .bind(chain)
            .bind(label)
            .bind(GENESIS_HASH)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Record a history event in a workspace's chain (`Some(id)`) or the
    /// installation's (`None`), as part of this transaction: it is appended
    /// at [`Tx::commit`], linked to the chain's last event, and commits or
    /// rolls back with the change it records.
    ///
    /// Recording takes no lock. At commit the transaction appends to each
    /// chain it recorded in, in the one order that cannot deadlock:
    /// workspace chains first, in ascending workspace id, the installation
    /// chain last, each chain's events in the order they were recorded.
    /// Appending locks the chain's head until the transaction ends, after
    /// every row lock the transaction took, so callers need not order their
    /// events by chain.
    pub fn record(
        &mut self,
        workspace_id: Option<Uuid>,
        at: OffsetDateTime,
        initiator: &Initiator,
        event: Event,
    ) -> Result<()> {
        let kind = event.kind();
        let details = serde_json::to_value(&event)
            .map_err(|e| StoreError::Corrupt(format!("the details of a {kind} event: {e}")))?;
        self.events.push(Recorded { workspace_id, kind, at, initiator: initiator.clone(), details });
        Ok(())
    }

    /// Append the recorded events, workspace chains first in ascending id,
    /// the installation chain last, each chain in recording order.
    pub(crate) async fn append_recorded(&mut self) -> Result<()> {
        let mut events = std::mem::take(&mut self.events);
        // stable: a chain's events stay in the order they were recorded
        events.sort_by_key(|e| (e.workspace_id.is_none(), e.workspace_id));
        for e in &events {
            self.append(e).await?;
        }
        Ok(())
    }

    /// Append one event to its chain, linked to the chain's last event.
    async fn append(&mut self, recorded: &Recorded) -> Result<()> {
        let Recorded { workspace_id, kind, at, initiator, details } = recorded;
        let chain = workspace_id.map_or_else(|| INSTALLATION_CHAIN.to_owned(), |w| w.to_string());
        // Bumping the head first takes its row lock (PostgreSQL) so appends to
        // one chain are serialised; it returns the new seq and the old hash.
        let head = crate::db::query(
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
            at_us: to_us(*at),
            initiator_kind: initiator.kind.as_str().to_owned(),
            initiator_id: initiator.id.clone(),
            initiator_name: initiator.name.clone(),
            details: details.to_string(),
            prev_hash: head.text("last_hash")?,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        // The event and the head's new hash: on PostgreSQL in one statement,
        // for the chain's head stays locked until commit, and every round
        // trip in between holds up the workspace's next change (B4's binding
        // changes ran one after another at about 1.7 ms each); SQLite's one
        // writer has no round trips to save.
        let sql = if self.only_writer() { INSERT_EVENT } else { INSERT_EVENT_AND_HEAD };
        let inserted = crate::db::query(sql)
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
        if self.only_writer() {
            crate::db::query("UPDATE history_chains SET last_hash = $2 WHERE chain = $1")
                .bind(&chain)
                .bind(&event.hash)
                .execute(self.conn())
                .await?;
        } else if inserted.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!("the head of history chain {chain} was not moved")));
        }
        Ok(())
    }

    /// A page of a chain's events, newest first. Only the filters given are
    /// in the statement, and the cursor is a comparison with a value always
    /// bound (the largest when there is none), so that no condition asks
    /// whether a bound value is NULL: on a generic plan, which PostgreSQL
    /// may choose for any statement after its first runs, such a condition
    /// cannot start the scan of `(chain, seq)` at the cursor, and a time
    /// range given as `$n IS NULL OR at >= $n` made it pick the index on
    /// `at` and sort every event of the chain (88 ms at 130,000 events).
    pub async fn history(&mut self, chain: &str, f: &HistoryFilter, limit: u32) -> Result<Vec<ChainedEvent>> {
        let mut sql = format!("SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 AND seq < $2");
        let mut n = 2;
        let mut and = |condition: &str| {
            n += 1;
            sql.push_str(&format!(" AND {condition} ${n}"));
        };
        if f.since.is_some() {
            and("at >=");
        }
        if f.until.is_some() {
            and("at <");
        }
        if f.initiator.is_some() {
            and("initiator_name =");
        }
        if f.kind.is_some() {
            and("kind =");
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT CAST(${} AS BIGINT)", n + 1));
        let mut q = crate::db::query(sql).bind(chain).bind(f.before_seq.unwrap_or(i64::MAX));
        if let Some(since) = f.since {
            q = q.bind(to_us(since));
        }
        if let Some(until) = f.until {
            q = q.bind(to_us(until));
        }
        if let Some(initiator) = f.initiator.as_deref() {
            q = q.bind(initiator);
        }
        if let Some(kind) = f.kind {
            q = q.bind(kind.as_str());
        }
        let rows = q.bind(page_limit(limit)).fetch_all(self.conn()).await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn history_event(&mut self, chain: &str, id: &str) -> Result<Option<ChainedEvent>> {
        let row = crate::db::query(format!("SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 AND id = $2"))
            .bind(chain)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }
}

/// Events read at a time when a chain is verified.
const VERIFY_PAGE: i64 = 1000;

impl Store {
    /// Verify every chain (HI3): its links and head; that every workspace
    /// has its chain and every chain the installation recorded as created
    /// still exists; and, given checkpoints and the key they must be signed
    /// with, that each is signed by it unchanged and still contained in its
    /// chain (SE7). One read snapshot; each chain read in pages, so memory
    /// does not grow with its length.
    pub async fn verify_history(&self, checkpoints: Option<(&PublicKey, &[Checkpoint])>) -> Result<Verification> {
        let mut tx = self.read().await?;
        let heads = crate::db::query("SELECT chain, label, last_seq, last_hash FROM history_chains ORDER BY chain")
            .fetch_all(tx.conn())
            .await?;
        let workspaces = crate::db::query("SELECT id, identifier FROM workspaces ORDER BY id")
            .fetch_all(tx.conn())
            .await?
            .iter()
            .map(|r| Ok((r.text("id")?, r.text("identifier")?)))
            .collect::<Result<Vec<_>>>()?;
        let (key, given) = match checkpoints {
            Some((key, given)) => (Some(key), given),
            None => (None, &[][..]),
        };
        let mut by_chain: BTreeMap<&str, Vec<&Checkpoint>> = BTreeMap::new();
        for cp in given {
            by_chain.entry(cp.chain.as_str()).or_default().push(cp);
        }
        let mut v = Verification {
            chains_checked: 0,
            events_checked: 0,
            checkpoints_checked: given.len() as u64,
            problems: Vec::new(),
        };
        let mut chains = BTreeSet::new();
        let mut recorded = Vec::new();
        for head in &heads {
            let chain = head.text("chain")?;
            let label = head.text("label")?;
            let cps = by_chain.remove(chain.as_str()).unwrap_or_default();
            // the chain in pages: one page in memory, whatever its length
            // verifying, or the first break (the rest of the chain is still
            // read for its checkpoints)
            let mut verified: Result<ChainVerifier, BrokenLink> = Ok(ChainVerifier::new(&label));
            let mut hashes_at: BTreeMap<i64, Option<String>> = cps.iter().map(|cp| (cp.seq, None)).collect();
            let mut last_seq = 0;
            loop {
                let rows = crate::db::query(format!(
                    "SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 AND seq > $2 \
                     ORDER BY seq LIMIT CAST($3 AS BIGINT)"
                ))
                .bind(&chain)
                .bind(last_seq)
                .bind(VERIFY_PAGE)
                .fetch_all(tx.conn())
                .await?;
                for row in &rows {
                    let event = event_from_row(row)?;
                    if let Ok(v) = verified.as_mut()
                        && let Err(b) = v.push(&event)
                    {
                        verified = Err(b);
                    }
                    if chain == INSTALLATION_CHAIN {
                        recorded.extend(created_chain(&event));
                    }
                    if let Some(hash) = hashes_at.get_mut(&event.seq) {
                        *hash = Some(event.hash);
                    }
                    last_seq = event.seq;
                }
                if rows.len() < VERIFY_PAGE as usize {
                    break;
                }
                // a long chain does not keep this worker from other requests
                tokio::task::yield_now().await;
            }
            v.chains_checked += 1;
            let (last_seq_head, last_hash) = (head.int("last_seq")?, head.text("last_hash")?);
            match verified.and_then(|v| v.finish((last_seq_head, &last_hash))) {
                Ok(n) => v.events_checked += n,
                Err(broken) => v.problems.push(HistoryProblem::broken_link(broken, &chain)),
            }
            if let Some(key) = key {
                for cp in cps {
                    let at = ChainAt { hash_at_seq: hashes_at.get(&cp.seq).and_then(Option::as_deref), last_seq };
                    if let Err(fault) = check_checkpoint_at(key, cp, Some(at)) {
                        v.problems.push(HistoryProblem::checkpoint(&fault, &chain, &label, cp.seq));
                    }
                }
            }
            chains.insert(chain);
        }
        v.problems.extend(missing_chains(&workspaces, &chains, &recorded));
        // checkpoints of chains that are gone
        if let Some(key) = key {
            for (chain, cps) in by_chain {
                for cp in cps {
                    if let Err(fault) = check_checkpoint_at(key, cp, None) {
                        v.problems.push(HistoryProblem::checkpoint(&fault, chain, &cp.label, cp.seq));
                    }
                }
            }
        }
        Ok(v)
    }

    /// The head of every chain now, in one snapshot, to sign as checkpoints.
    pub async fn chain_heads(&self) -> Result<Vec<ChainHead>> {
        let mut tx = self.read().await?;
        let rows = crate::db::query("SELECT chain, label, last_seq, last_hash FROM history_chains ORDER BY chain")
            .fetch_all(tx.conn())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChainHead {
                    chain: r.text("chain")?,
                    label: r.text("label")?,
                    seq: r.int("last_seq")?,
                    hash: r.text("last_hash")?,
                })
            })
            .collect()
    }

    /// Record in the installation chain the creation of every workspace chain
    /// it does not name yet: chains made before creations were recorded (an
    /// upgrade), so that their deletion is detected too. Idempotent, and safe
    /// on several nodes at once. Returns how many it recorded.
    pub async fn record_unrecorded_chains(&self, now: OffsetDateTime) -> Result<u64> {
        let mut tx = self.write().await?;
        // the installation chain's head first: a second node waits here, then sees what the first recorded
        crate::db::query("UPDATE history_chains SET last_seq = last_seq WHERE chain = $1")
            .bind(INSTALLATION_CHAIN)
            .execute(tx.conn())
            .await?;
        // the kind as a literal: the partial index `history_events_chain_created`
        // holds these events alone, and a planner uses it only for that literal
        let rows = crate::db::query(format!(
            "SELECT {EVENT_COLS} FROM history_events WHERE chain = $1 AND kind = '{}'",
            EventKind::HistoryChainCreated.as_str()
        ))
        .bind(INSTALLATION_CHAIN)
        .fetch_all(tx.conn())
        .await?;
        let mut known = BTreeSet::new();
        for r in &rows {
            if let Some((chain, _)) = created_chain(&event_from_row(r)?) {
                known.insert(chain);
            }
        }
        let chains = crate::db::query("SELECT chain, label FROM history_chains WHERE chain <> $1 ORDER BY chain")
            .bind(INSTALLATION_CHAIN)
            .fetch_all(tx.conn())
            .await?;
        let system = Initiator::system(HISTORY_JOB);
        let mut n = 0;
        for r in &chains {
            let (chain, label) = (r.text("chain")?, r.text("label")?);
            if known.contains(&chain) {
                continue;
            }
            let event = HistoryChainCreated { workspace: label, chain, recorded_later: true };
            tx.record(None, now, &system, event.into())?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}
