//! Canopy's background work, driven by the store's outbox.
//!
//! Every job has a public single step ([`mailer::deliver_due`]) that tests
//! call directly with a settable clock, and a loop ([`mailer::run`]) that
//! `canopy serve` spawns.

pub mod mailer;
