//! Canopy's background work, driven by the store's outbox.
//!
//! Every job has a public single step ([`mailer::deliver_due`],
//! [`replication::Replicator::run_once`], [`expiry::end_due`],
//! [`payments::substitute_expired`], [`checkpoints::export_once`]) that
//! tests call directly with a settable clock, and a loop ([`mailer::run`],
//! [`replication::Replicator::run`], [`expiry::run`], [`payments::run`],
//! [`checkpoints::run`]) that `canopy serve` spawns.
//!
//! Every loop takes a [`CancellationToken`]: once it is cancelled the loop
//! starts nothing new, finishes or leaves what it is doing at a point where
//! that is safe, and returns, so a stopping node can wait for its loops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub mod checkpoints;
pub mod deletion;
pub mod expiry;
pub mod mailer;
pub mod metrics;
pub mod payments;
pub mod port;
pub mod replication;
mod turns;

/// Sleep for `d` unless `stop` is cancelled first; `false` when it was.
async fn sleep_unless_stopped(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        biased;
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}
