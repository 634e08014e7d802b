//! The clock trait. Implementations live at the edges (the binary's system
//! clock, the test kit's settable clock); the domain only receives instants.

use time::OffsetDateTime;

/// Source of the current instant. Passed in everywhere time matters so that
/// tests can move it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}
