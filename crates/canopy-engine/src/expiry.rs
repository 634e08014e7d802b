//! The expiry job (AC7): ends every binding whose expiration has passed,
//! once, with a history event by the system job `expiry`, and marks its
//! project's tenants dirty so the access leaves every tenant. The end is
//! the binding use case's (`canopy_app::bindings::expire`, which asks the
//! domain whether it is due and whether its people are still told); this
//! job only finds what is due and runs each in its own transaction.
//!
//! It asks the store for what is due instead of keeping timers, so bindings
//! whose expiration passed while Canopy was stopped are ended at the first
//! pass after start. The loop sleeps until the next expiration (looking
//! again at least every [`LOOK_AGAIN`], for bindings made meanwhile on any
//! node), so a binding ends within moments of its expiration. Every node may
//! run it: ending a binding is a conditional update, so one node wins.
//!
//! A week before its expiration (`EXPIRING_SOON`) a binding's notice goes
//! out once ([`notify_soon`]): to the people it gives access and to the
//! workspace's managers.
//!
//! Four-eye requests lapse too: one that waited `REQUEST_LIFETIME` without a
//! decision is voided ([`void_lapsed`], through `canopy_app::requests::lapse`)
//! and its requester told.
//!
//! An ended binding stays in the store: it is no longer in force
//! (`Binding::in_force_at`), the expired-access list shows it, and extending
//! it makes it count again.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use canopy_app::bindings::ChangeBy;
use canopy_domain::Email;
use canopy_domain::access::{EXPIRING_SOON, ExpiryState, expiry_state};
use canopy_domain::clock::Clock;
use canopy_domain::four_eye::REQUEST_LIFETIME;
use canopy_domain::history::Initiator;
use canopy_domain::mail::{AccessChange, expiring_for_manager};
use canopy_store::{Store, StoreError};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The name the history gives this job.
pub const JOB: &str = "expiry";
/// How many bindings one transaction reads at a time.
const BATCH: i64 = 200;
/// The longest the loop sleeps without looking for new expirations.
pub const LOOK_AGAIN: StdDuration = StdDuration::from_secs(5);

/// End every binding whose expiration passed by now. Returns how many this
/// pass ended.
pub async fn end_due(store: &Store, clock: &dyn Clock) -> Result<u64, StoreError> {
    let system = Initiator::system(JOB);
    let by = ChangeBy { initiator: system.clone(), name: JOB, request: None };
    let mut ended = 0;
    loop {
        let now = clock.now();
        let due = store.read().await?.due_expiries(now, BATCH).await?;
        if due.is_empty() {
            return Ok(ended);
        }
        let mut progressed = false;
        for b in due {
            // one binding that fails does not hold up the others
            match end_one(store, &by, &b, now).await {
                Ok(true) => {
                    ended += 1;
                    progressed = true;
                }
                Ok(false) => {}
                Err(e) => tracing::error!(binding = %b.binding.id, error = %e, "could not end an expired binding"),
            }
        }
        if !progressed {
            return Ok(ended);
        }
    }
}

/// End one expired binding through the binding use case, in its own
/// transaction; false when it is not due, another node ended it, or its
/// expiration changed meanwhile.
async fn end_one(
    store: &Store,
    by: &ChangeBy<'_>,
    b: &canopy_store::BindingRecord,
    now: OffsetDateTime,
) -> Result<bool, canopy_app::Error> {
    let mut tx = store.write().await?;
    if !canopy_app::bindings::expire(&mut tx, by, b, now).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Queue the soon-expiring notice of every binding that entered the last
/// week before its expiration (AC8, AC12), once per binding and expiration:
/// to the people it gives access, and to the workspace's managers. Returns
/// how many bindings were noticed.
pub async fn notify_soon(store: &Store, clock: &dyn Clock) -> Result<u64, StoreError> {
    let mut noticed = 0;
    loop {
        let now = clock.now();
        let due = store.read().await?.due_expiry_notices(now, now + EXPIRING_SOON, BATCH).await?;
        if due.is_empty() {
            return Ok(noticed);
        }
        let mut progressed = false;
        for b in due {
            let Some(expires_at) = b.binding.expires_at else { continue };
            if expiry_state(Some(expires_at), now) != Some(ExpiryState::Soon) {
                continue;
            }
            let mut tx = store.write().await?;
            if !tx.mark_expiry_notice(b.binding.id, expires_at, now).await? {
                continue;
            }
            let Some(project) = tx.project_by_id(b.binding.project_id).await? else { continue };
            let workspace = tx.workspace_by_id(project.workspace_id).await?.map(|w| w.identifier).unwrap_or_default();
            let notice = b.notice(AccessChange::ExpiringSoon, &workspace, &project.identifier, JOB);
            tx.notify_access(b.binding.subject, &notice, now).await?;
            let subject = format!("{}:{}", b.binding.subject.kind.as_str(), b.subject_name);
            for canopy_store::PersonRecord { email, .. } in tx.workspace_managers(project.workspace_id).await? {
                if let Ok(to) = Email::parse(&email) {
                    tx.enqueue_mail(&expiring_for_manager(&to, &subject, &notice), now).await?;
                }
            }
            tx.commit().await?;
            noticed += 1;
            progressed = true;
        }
        if !progressed {
            return Ok(noticed);
        }
    }
}

/// How long to sleep before the next pass: until the next expiration, at
/// most [`LOOK_AGAIN`].
pub async fn until_next(store: &Store, clock: &dyn Clock) -> Result<StdDuration, StoreError> {
    let next = store.read().await?.next_expiry().await?;
    Ok(match next {
        Some(at) => StdDuration::try_from(at - clock.now()).unwrap_or(StdDuration::ZERO).min(LOOK_AGAIN),
        None => LOOK_AGAIN,
    })
}

/// Void every pending four-eye request that waited [`REQUEST_LIFETIME`]
/// without a decision (FE2), through the requests use case: a history event
/// by this job, and each requester told. Returns how many this pass voided.
pub async fn void_lapsed(store: &Store, clock: &dyn Clock) -> Result<u64, canopy_app::Error> {
    let now = clock.now();
    let system = Initiator::system(JOB);
    let mut voided = 0;
    loop {
        let batch = store.read().await?.lapsed_requests(now - REQUEST_LIFETIME, BATCH).await?;
        if batch.is_empty() {
            return Ok(voided);
        }
        let mut progressed = false;
        for q in batch {
            let mut tx = store.write().await?;
            // decided meanwhile (by a person, or another node): not ours
            if !canopy_app::requests::lapse(&mut tx, &system, &q, now).await? {
                continue;
            }
            tx.commit().await?;
            voided += 1;
            progressed = true;
        }
        if !progressed {
            return Ok(voided);
        }
    }
}

/// End expired bindings (and void lapsed requests, and send the notices of
/// soon-expiring access) until `stop` is cancelled: once at start (catching
/// up on downtime), then at each expiration. A pass in progress when `stop`
/// is cancelled runs to its end; cut short by the caller, it loses nothing:
/// each binding ends in its own transaction, and what is still due is ended
/// by the next pass on any node.
pub async fn run(store: Store, clock: Arc<dyn Clock>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match void_lapsed(&store, clock.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "lapsed four-eye requests voided"),
            Err(e) => tracing::error!(error = %e, "the lapsed-request pass failed"),
        }
        match notify_soon(&store, clock.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(bindings = n, "soon-expiring notices queued"),
            Err(e) => tracing::error!(error = %e, "the expiry notice pass failed"),
        }
        let ended = match end_due(&store, clock.as_ref()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "the expiry pass failed");
                0
            }
        };
        if ended > 0 {
            tracing::info!(ended, "expired bindings ended");
        }
        let mut wait = until_next(&store, clock.as_ref()).await.unwrap_or(LOOK_AGAIN);
        if ended == 0 && wait.is_zero() {
            // due but not ended (a failing pass): do not spin
            wait = StdDuration::from_secs(1);
        }
        // an expiration a few milliseconds ahead: wake just after it
        if !crate::sleep_unless_stopped(&stop, wait + StdDuration::from_millis(10)).await {
            break;
        }
    }
}
