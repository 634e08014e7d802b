//! The daily payment job (PM3): every project whose payment method has
//! expired and that names a substitute switches to the substitute, which it
//! then no longer has; each change is in the workspace's history, by the
//! system job `payments`. Running it more often changes nothing more: a
//! switched project has no substitute left.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use canopy_domain::clock::Clock;
use canopy_domain::events::{ExpiredPaymentMethod, PaymentMethodSubstituted};
use canopy_domain::history::Initiator;
use canopy_domain::payments::substitutes;
use canopy_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

pub const JOB: &str = "payments";
/// How often `run` looks (the rule is per day; looking hourly means a
/// substitution happens within the hour after midnight UTC).
const EVERY: StdDuration = StdDuration::from_secs(3600);

/// How many projects one transaction switches.
const BATCH: i64 = 200;

/// Replace every expired payment method that has a substitute. Returns how
/// many projects switched. Only the projects due are read, a batch per
/// transaction: a switched project names no substitute any more.
pub async fn substitute_expired(store: &Store, clock: &dyn Clock) -> Result<u64, StoreError> {
    let now = clock.now();
    let today = now.date();
    let system = Initiator::system(JOB);
    let mut switched = 0;
    loop {
        let mut tx = store.write().await?;
        // where the installation switched substitutes off, none replaces a method (PM2)
        let enabled = tx.settings().await?.payment_substitutes;
        if !enabled {
            return Ok(switched);
        }
        let due = tx.projects_to_substitute(today, BATCH).await?;
        let mut progressed = false;
        for p in due {
            let Some(substitute) = p.substitute else { continue };
            if !substitutes(p.method.expires_on, enabled, today) {
                continue;
            }
            tx.set_project_payment(p.project_id, Some(substitute), None).await?;
            let event = PaymentMethodSubstituted {
                project: p.project,
                expired: ExpiredPaymentMethod {
                    payment_method: p.method.id,
                    name: p.method.name,
                    expires_on: p.method.expires_on,
                },
                payment_method: substitute,
                substitute_payment_method: None,
            };
            tx.record(Some(p.workspace_id), now, &system, event.into())?;
            switched += 1;
            progressed = true;
        }
        tx.commit().await?;
        if !progressed {
            return Ok(switched);
        }
    }
}

/// Run the job at start and then every hour until `stop` is cancelled.
pub async fn run(store: Store, clock: Arc<dyn Clock>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        match substitute_expired(&store, clock.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(projects = n, "expired payment methods replaced by their substitutes"),
            Err(e) => tracing::error!(error = %e, "the payment job failed"),
        }
        if !crate::sleep_unless_stopped(&stop, EVERY).await {
            break;
        }
    }
}
