//! Expired access (AC8, AC12): bindings that expired (red) or expire within
//! [`EXPIRING_SOON`] (yellow), per workspace and across the installation.
//! The classification is the domain's [`expiry_state`]; extending is a
//! change of the binding ([`crate::bindings::change`]).

use canopy_domain::access::{EXPIRING_SOON, ExpiryState, expiry_state};
use canopy_domain::authz::Action;
use canopy_store::{BindingRecord, Store, Tx, from_us, to_us};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::paging::{Page, Paging, encode};
use crate::principal::Principal;

/// A binding on the list, with where it is and its state.
#[derive(Debug, Clone)]
pub struct Expiring {
    pub binding: BindingRecord,
    pub workspace: String,
    pub project: String,
    pub expires_at: OffsetDateTime,
    pub state: ExpiryState,
}

/// Which part of the list: both states, or only one.
pub fn parse_state(raw: Option<&str>) -> Result<Option<ExpiryState>> {
    match raw {
        None => Ok(None),
        Some("expired") => Ok(Some(ExpiryState::Expired)),
        Some("soon") => Ok(Some(ExpiryState::Soon)),
        Some(_) => Err(Error::invalid("state", "must be expired or soon")),
    }
}

/// A workspace's expired and soon-expiring bindings, soonest first (managers).
pub async fn of_workspace(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    ws: &str,
    state: Option<ExpiryState>,
    paging: &Paging,
) -> Result<Page<Expiring>> {
    let mut tx = store.read().await?;
    let ws = by.workspace_in(&mut tx, ws, Action::ManageWorkspace).await?;
    list(&mut tx, Some(ws.id), now, state, paging).await
}

/// Expired and soon-expiring bindings across the installation (admins).
pub async fn of_installation(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    state: Option<ExpiryState>,
    paging: &Paging,
) -> Result<Page<Expiring>> {
    by.require(Action::AdministerInstallation)?;
    let mut tx = store.read().await?;
    list(&mut tx, None, now, state, paging).await
}

/// The first `n` bindings of a workspace that expire soon, soonest first:
/// a manager's notices (AC12).
pub async fn soon(tx: &mut Tx, workspace: Uuid, now: OffsetDateTime, n: i64) -> Result<Vec<Expiring>> {
    let rows = tx.expiring_bindings(Some(workspace), now + EXPIRING_SOON, Some((now, Uuid::max())), n).await?;
    Ok(rows.into_iter().filter_map(|row| classify(row, now)).collect())
}

fn classify((binding, workspace, project): (BindingRecord, String, String), now: OffsetDateTime) -> Option<Expiring> {
    let expires_at = binding.binding.expires_at?;
    let state = expiry_state(Some(expires_at), now)?;
    Some(Expiring { binding, workspace, project, expires_at, state })
}

/// One page of the list, of one workspace or all, keyed by (expiration, id).
async fn list(
    tx: &mut Tx,
    workspace: Option<Uuid>,
    now: OffsetDateTime,
    state: Option<ExpiryState>,
    paging: &Paging,
) -> Result<Page<Expiring>> {
    let limit = paging.limit as usize;
    let after =
        paging.after_pair(|t| t.parse::<i64>().ok().and_then(|us| from_us(us).ok()), |id| Uuid::parse_str(id).ok())?;
    // `expired` ends now; `soon` starts after now, so the expired ones
    // before it are not walked; both end 7 days ahead (the store filters by
    // expiration only, the domain decides the state)
    let (after, until) = match state {
        None => (after, now + EXPIRING_SOON),
        Some(ExpiryState::Soon) => (after.max(Some((now, Uuid::max()))), now + EXPIRING_SOON),
        Some(ExpiryState::Expired) => (after, now),
    };
    let mut items = Vec::new();
    let mut cursor = after;
    let mut next_cursor = None;
    // skip rows of the other state, page after page
    'pages: loop {
        let rows = tx.expiring_bindings(workspace, until, cursor, paging.fetch()).await?;
        let fetched = rows.len();
        for row in rows {
            let key = row.0.binding.expires_at.map(|t| (t, row.0.binding.id));
            let Some(item) = classify(row, now) else { continue };
            if state.is_some_and(|s| s != item.state) {
                cursor = key;
                continue;
            }
            if items.len() == limit {
                next_cursor = cursor.map(|(t, id)| encode(&format!("{}/{id}", to_us(t))));
                break 'pages;
            }
            cursor = key;
            items.push(item);
        }
        if fetched <= limit {
            break;
        }
    }
    Ok(Page { items, next_cursor })
}
