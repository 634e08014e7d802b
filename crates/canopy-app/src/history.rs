//! Reading the history (HI1, HI2): a workspace's events for its managers,
//! the installation's own for admins, and the verification of every chain
//! against itself and against signed checkpoints kept outside (HI3, SE7).

use canopy_domain::authz::Action;
use canopy_domain::checkpoint::{Checkpoint, HistoryKey, MAX_CHECKPOINTS};
use canopy_domain::history::{ChainedEvent, EventKind};
use canopy_store::{HistoryFilter, INSTALLATION_CHAIN, Store, Tx, Verification};
use time::OffsetDateTime;

use crate::error::{Error, FieldError, Result};
use crate::paging::{Page, Paging, bad_cursor, page};
use crate::principal::Principal;

/// What a caller filters a history by, as given.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only events at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub until: Option<OffsetDateTime>,
    /// Only events by this initiator (username, API key name or system job).
    pub initiator: Option<String>,
    /// Only events of this kind, e.g. `binding_created`.
    pub kind: Option<String>,
}

impl HistoryQuery {
    /// The store's filter for this query and page, naming the wrong field.
    fn filter(self, paging: &Paging) -> Result<HistoryFilter> {
        let kind = self
            .kind
            .as_deref()
            .map(str::parse::<EventKind>)
            .transpose()
            .map_err(|e| Error::invalid("kind", e.to_string()))?;
        let before_seq = paging.after.as_deref().map(|c| c.parse::<i64>().map_err(|_| bad_cursor())).transpose()?;
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            return Err(Error::invalid("until", "must be after since"));
        }
        Ok(HistoryFilter { since: self.since, until: self.until, initiator: self.initiator, kind, before_seq })
    }
}

/// One page of a workspace's history, newest first (managers, admins).
pub async fn of_workspace(
    store: &Store,
    by: &Principal,
    ws: &str,
    query: HistoryQuery,
    paging: &Paging,
) -> Result<Page<ChainedEvent>> {
    let filter = query.filter(paging)?;
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewHistory).await?;
    chain_page(&mut tx, &ws.id.to_string(), &filter, paging.limit).await
}

/// One page of the installation's own history: users, groups, project roles
/// and installation API keys (admins).
pub async fn of_installation(
    store: &Store,
    by: &Principal,
    query: HistoryQuery,
    paging: &Paging,
) -> Result<Page<ChainedEvent>> {
    by.require(Action::AdministerInstallation)?;
    let filter = query.filter(paging)?;
    let mut tx = store.read().await?;
    chain_page(&mut tx, INSTALLATION_CHAIN, &filter, paging.limit).await
}

async fn chain_page(tx: &mut Tx, chain: &str, filter: &HistoryFilter, limit: u32) -> Result<Page<ChainedEvent>> {
    let rows = tx.history(chain, filter, limit).await?;
    Ok(page(rows, limit, |e| e.seq.to_string()))
}

/// One event of a workspace's history with its details (managers, admins).
pub async fn event(store: &Store, by: &Principal, ws: &str, id: &str) -> Result<ChainedEvent> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ViewHistory).await?;
    tx.history_event(&ws.id.to_string(), id)
        .await?
        .ok_or_else(|| Error::not_found(format!("event {id:?} is not in the history of {}", ws.identifier)))
}

/// Verify every chain, and where given, that each checkpoint is signed by
/// `key` unchanged and still contained in its chain (admins). What is wrong
/// is the answer's, not an error.
pub async fn verify(
    store: &Store,
    by: &Principal,
    key: &HistoryKey,
    checkpoints: Option<Vec<Checkpoint>>,
) -> Result<Verification> {
    by.require(Action::AdministerInstallation)?;
    let Some(checkpoints) = checkpoints else { return Ok(store.verify_history(None).await?) };
    if checkpoints.len() > MAX_CHECKPOINTS {
        return Err(Error::invalid(
            "checkpoints",
            format!("at most {MAX_CHECKPOINTS} checkpoints at once (got {}); send them in parts", checkpoints.len()),
        ));
    }
    let errors: Vec<FieldError> = checkpoints
        .iter()
        .enumerate()
        .flat_map(|(i, cp)| {
            cp.invalid_fields()
                .into_iter()
                .map(move |(field, e)| FieldError::new(&format!("checkpoints[{i}].{field}"), e.to_string()))
        })
        .collect();
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(store.verify_history(Some((&key.public_key(), &checkpoints))).await?)
}

/// A signed checkpoint of every chain's head now (admins).
pub async fn checkpoints(
    store: &Store,
    by: &Principal,
    key: &HistoryKey,
    now: OffsetDateTime,
) -> Result<Vec<Checkpoint>> {
    by.require(Action::AdministerInstallation)?;
    Ok(store.chain_heads().await?.iter().map(|h| key.sign(h, now)).collect())
}
