//! What the engine counts for `GET /metrics`: platform calls by platform
//! type, operation and outcome, and replication runs in flight on this node.
//!
//! The instruments belong to one [`Replicator`](crate::replication::Replicator)
//! (no global); [`EngineMetrics::register`] puts them into the registry the
//! server reports. Labels come from closed sets (platform types, the
//! operations of the `Platform` trait, three outcomes), never from a
//! platform's answer.

use canopy_domain::platforms::PlatformType;
use canopy_platforms::PlatformError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the platform-call buckets, in seconds: 5 ms to a minute
/// (AWS account creation and Identity Center assignments are polled).
const CALL_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

/// One of the operations of the `Platform` trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    EnsureTenant,
    Observe,
    Grant,
    Revoke,
    DeleteTenant,
    FindResources,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::EnsureTenant => "ensure_tenant",
            Self::Observe => "observe",
            Self::Grant => "grant",
            Self::Revoke => "revoke",
            Self::DeleteTenant => "delete_tenant",
            Self::FindResources => "find_resources",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    platform_type: &'static str,
    operation: &'static str,
    /// `ok`, `retryable` or `permanent`.
    outcome: &'static str,
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

/// The engine's instruments; clones share them.
#[derive(Clone)]
pub struct EngineMetrics {
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
    errors: Family<CallLabels, Counter>,
    runs: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            calls: Family::new_with_constructor(call_histogram as fn() -> Histogram),
            errors: Family::default(),
            runs: Gauge::default(),
        }
    }
}

impl EngineMetrics {
    /// Report these instruments in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "canopy_platform_call_duration",
            "Calls to cloud platforms, by platform type, operation and outcome (ok, retryable, permanent)",
            Unit::Seconds,
            self.calls.clone(),
        );
        registry.register(
            "canopy_platform_call_errors",
            "Platform calls that failed, by platform type, operation and outcome (retryable, permanent)",
            self.errors.clone(),
        );
        registry.register(
            "canopy_replication_runs_in_flight",
            "Replication runs this node is working on now",
            self.runs.clone(),
        );
    }

    /// A platform call that took `seconds` and ended with `outcome`.
    pub(crate) fn call<T>(
        &self,
        platform: PlatformType,
        operation: Operation,
        seconds: f64,
        outcome: &Result<T, PlatformError>,
    ) {
        let outcome = match outcome {
            Ok(_) => "ok",
            Err(PlatformError::Retryable { .. }) => "retryable",
            Err(PlatformError::Permanent { .. }) => "permanent",
        };
        let labels = CallLabels { platform_type: platform.as_str(), operation: operation.as_str(), outcome };
        self.calls.get_or_create(&labels).observe(seconds);
        if outcome != "ok" {
            self.errors.get_or_create(&labels).inc();
        }
    }

    /// A run starts; it counts as in flight until the guard is dropped.
    pub(crate) fn run_started(&self) -> RunGuard {
        self.runs.inc();
        RunGuard { metrics: self.clone() }
    }
}

/// A run in flight, counted until dropped (a run that panics included).
pub(crate) struct RunGuard {
    metrics: EngineMetrics,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.metrics.runs.dec();
    }
}
