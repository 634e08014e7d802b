//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// Ready when the database answers.
pub async fn ready(State(app): State<AppState>) -> (StatusCode, &'static str) {
    match app.store.read().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database not reachable")
        }
    }
}
