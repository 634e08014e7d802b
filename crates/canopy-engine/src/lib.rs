//! Canopy's background work, driven by the store's outbox.
//!
//! Every job has a public single step ([`mailer::deliver_due`],
//! [`replication::Replicator::run_once`], [`expiry::end_due`],
//! [`checkpoints::export_once`]) that tests call directly with a settable
//! clock, and a loop ([`mailer::run`], [`replication::Replicator::run`],
//! [`expiry::run`], [`checkpoints::run`]) that `canopy serve` spawns.

pub mod checkpoints;
pub mod deletion;
pub mod expiry;
pub mod mailer;
pub mod payments;
pub mod port;
pub mod replication;
