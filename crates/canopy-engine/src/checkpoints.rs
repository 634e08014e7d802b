//! The scheduled export of history checkpoints (SE7): every round, a signed
//! checkpoint of every chain's head goes outside the database, appended to a
//! file (one JSON line per checkpoint) and/or POSTed to a webhook, so that a
//! chain cut short or deleted later is shown by checkpoints nobody with
//! access to the database could change.
//!
//! A failed round is logged and the next round tries again; the job never
//! stops the server. Every node that is configured exports (checkpoints are
//! statements, and more of them do no harm).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use canopy_domain::checkpoint::{Checkpoint, HistoryKey};
use canopy_domain::clock::Clock;
use canopy_store::{Store, StoreError};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// How long one webhook call may take, connection to answer.
pub const WEBHOOK_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// The most of a webhook's answer that is read (for the log, on failure).
pub const MAX_WEBHOOK_ANSWER: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid checkpoint webhook URL: {0}")]
    Url(String),
    #[error("{}", .0.join("; "))]
    Failed(Vec<String>),
}

/// Where checkpoints go.
#[derive(Debug, Clone, Default)]
pub struct CheckpointExport {
    /// A file that gets one JSON line per checkpoint appended.
    pub file: Option<PathBuf>,
    pub webhook: Option<Webhook>,
}

/// A URL that gets each round's checkpoints POSTed as JSON.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl Webhook {
    /// An `http` or `https` URL; calls time out after [`WEBHOOK_TIMEOUT`] and follow no redirect.
    pub fn new(url: &str) -> Result<Self, ExportError> {
        let url = reqwest::Url::parse(url).map_err(|e| ExportError::Url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ExportError::Url(format!("{}: use http:// or https://", url.scheme())));
        }
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExportError::Url(format!("building the HTTP client: {e}")))?;
        Ok(Self { url, client })
    }

    async fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        // the URL may carry a token: name only its host in messages
        let host = self.url.host_str().unwrap_or("?").to_owned();
        let mut res = self
            .client
            .post(self.url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| format!("the checkpoint webhook at {host} failed: {}", e.without_url()))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let mut answer = Vec::new();
        while answer.len() < MAX_WEBHOOK_ANSWER {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    answer.extend_from_slice(&chunk[..chunk.len().min(MAX_WEBHOOK_ANSWER - answer.len())])
                }
                _ => break,
            }
        }
        Err(format!("the checkpoint webhook at {host} answered {status}: {}", String::from_utf8_lossy(&answer).trim()))
    }
}

/// Sign a checkpoint of every chain's head now and send them where `export`
/// says: every target is tried, and an error names each that failed.
/// Returns the checkpoints sent.
pub async fn export_once(
    store: &Store,
    clock: &dyn Clock,
    key: &HistoryKey,
    export: &CheckpointExport,
) -> Result<Vec<Checkpoint>, ExportError> {
    let now = clock.now();
    let checkpoints: Vec<Checkpoint> = store.chain_heads().await?.iter().map(|h| key.sign(h, now)).collect();
    let mut failures = Vec::new();
    if let Some(path) = &export.file
        && let Err(e) = append_lines(path, &checkpoints).await
    {
        failures.push(format!("writing the checkpoint file {}: {e}", path.display()));
    }
    if let Some(webhook) = &export.webhook {
        let body = serde_json::json!({
            "public_key": key.public_key().to_base64(),
            "key_id": key.key_id(),
            "checkpoints": checkpoints,
        });
        if let Err(e) = webhook.post(&body).await {
            failures.push(e);
        }
    }
    if failures.is_empty() { Ok(checkpoints) } else { Err(ExportError::Failed(failures)) }
}

async fn append_lines(path: &std::path::Path, checkpoints: &[Checkpoint]) -> std::io::Result<()> {
    let mut text = String::new();
    for cp in checkpoints {
        text.push_str(&serde_json::to_string(cp)?);
        text.push('\n');
    }
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    file.write_all(text.as_bytes()).await?;
    file.sync_data().await
}

/// Export at start and then every `every` until `stop` is cancelled.
pub async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    key: HistoryKey,
    export: CheckpointExport,
    every: StdDuration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match export_once(&store, clock.as_ref(), &key, &export).await {
            Ok(cps) => tracing::info!(checkpoints = cps.len(), "history checkpoints exported"),
            Err(e) => tracing::error!(error = %e, "exporting history checkpoints failed; the next round tries again"),
        }
        if !crate::sleep_unless_stopped(&stop, every).await {
            break;
        }
    }
}
