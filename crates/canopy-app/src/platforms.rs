//! What a use case asks of the clouds directly, rather than through
//! replication: a tenant's resources before its deletion (DL2), revoking
//! everything Canopy manages in a tenant deleted by hand (DL3), and a
//! replication plan computed without applying it.
//!
//! The application layer defines this port and `canopy-engine` implements
//! it (its `Replicator`), so that interfaces reach the platforms through the
//! use cases without depending on the engine.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use canopy_domain::replication::{Assignment, DriftPolicy, Plan};
use canopy_store::Claim;
use time::OffsetDateTime;
use uuid::Uuid;

/// A boxed future of a port call.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, PlatformCallError>> + Send + 'a>>;

/// Why a call to a platform did not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlatformCallError {
    #[error("no such tenant")]
    NoTenant,
    #[error("a replication run is working on this tenant; try again in a moment")]
    Busy,
    /// The platform's own message.
    #[error("{0}")]
    Platform(String),
    /// Canopy's own fault (its database); logged, not shown.
    #[error("internal: {0}")]
    Internal(String),
}

/// What replication would change in a tenant now, without changing it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub desired: BTreeSet<Assignment<String>>,
    pub actual: BTreeSet<Assignment<String>>,
    pub changes: Plan<String>,
    pub drift: Plan<String>,
    pub drift_policy: DriftPolicy,
}

/// What revoking everything Canopy manages in a tenant did (a tenant a
/// platform engineer says was deleted by hand, finding 18 of issue 11).
#[derive(Debug, Clone, Default)]
pub struct Withdrawal {
    /// Each assignment revoked, with the instant the platform confirmed it.
    pub revoked: Vec<(Assignment<String>, OffsetDateTime)>,
    /// Why the platform could not be asked, or a revocation failed.
    pub failed: Option<String>,
}

/// The calls use cases make to platforms.
pub trait Platforms: Send + Sync {
    /// What a tenant still holds that deleting it would destroy (DL2).
    fn find_resources(&self, tenant: Uuid) -> Call<'_, Vec<String>>;
    /// Revoke every assignment Canopy manages in a tenant, holding its lease
    /// (returned) so that no run grants behind the revocations.
    fn withdraw_everything(&self, tenant: Uuid) -> Call<'_, (Withdrawal, Claim)>;
    /// Give back the lease of [`Platforms::withdraw_everything`] when the tenant stays.
    fn release<'a>(&'a self, claim: &'a Claim) -> Call<'a, ()>;
    /// What replication would change in a tenant now.
    fn preview(&self, tenant: Uuid) -> Call<'_, Preview>;
}
