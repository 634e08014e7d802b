//! The engine as the application layer's port to the platforms
//! ([`canopy_app::platforms::Platforms`]).

use canopy_app::platforms::{Call, PlatformCallError, Platforms, Preview, Withdrawal};
use canopy_store::Claim;
use uuid::Uuid;

use crate::replication::{Connector, ReplicationError, Replicator};

impl From<ReplicationError> for PlatformCallError {
    fn from(e: ReplicationError) -> Self {
        match e {
            ReplicationError::Store(e) => Self::Internal(e.to_string()),
            ReplicationError::NoTenant => Self::NoTenant,
            ReplicationError::Busy => Self::Busy,
            ReplicationError::Platform(e) => Self::Platform(e.to_string()),
        }
    }
}

impl<K: Connector> Platforms for Replicator<K> {
    fn find_resources(&self, tenant: Uuid) -> Call<'_, Vec<String>> {
        Box::pin(async move { Ok(Replicator::find_resources(self, tenant).await?) })
    }

    fn withdraw_everything(&self, tenant: Uuid) -> Call<'_, (Withdrawal, Claim)> {
        Box::pin(async move { Ok(Replicator::withdraw_everything(self, tenant).await?) })
    }

    fn release<'a>(&'a self, claim: &'a Claim) -> Call<'a, ()> {
        Box::pin(async move { Ok(Replicator::release(self, claim).await?) })
    }

    fn preview(&self, tenant: Uuid) -> Call<'_, Preview> {
        Box::pin(async move { Ok(Replicator::preview(self, tenant).await?) })
    }
}
