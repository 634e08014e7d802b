//! Logs and traces of `canopy serve`: `tracing` to stderr, filtered by
//! `--log`, and, with `--otlp-endpoint`, every span exported as an
//! OpenTelemetry trace over OTLP/HTTP (protobuf).
//!
//! The subscriber is the process's (tracing has one per process); it is
//! made from the configuration passed in, before the async runtime starts,
//! and [`Telemetry::shutdown`] flushes what is left after the runtime ended.
//! Without an endpoint no exporter is built and nothing leaves the process.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The service name every exported span carries.
pub const SERVICE_NAME: &str = "canopy";

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What must be flushed before the process exits.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

/// The URL traces are POSTed to: the collector's base URL with
/// `/v1/traces`, unless it names that path already.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }
}

/// The exporter's pipeline: spans batched on the SDK's own thread and sent
/// with a blocking reqwest client (rustls with ring, like every other HTTPS
/// client of Canopy), so that no export runs on the request path.
fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let client = reqwest::blocking::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the OTLP HTTP client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("building the OTLP exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build())
}

/// Install the process's subscriber: `filter` for what is logged and
/// traced; with `otlp_endpoint`, spans are exported there too. Call before
/// the async runtime starts (the exporter's client must not be made inside it).
pub fn init(filter: &str, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).context("--log")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let traces = otlp_endpoint.map(tracer_provider).transpose()?;
    let otel = traces.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(SERVICE_NAME)));
    // a subscriber set already (tests in one process) is kept
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init();
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint = %traces_url(endpoint), "exporting traces over OTLP");
    }
    Ok(Telemetry { traces })
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter (at most its
    /// timeout). Call after the runtime ended.
    pub fn shutdown(self) {
        if let Some(p) = self.traces
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: the last traces could not be exported: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn if1_otlp_traces_go_to_v1_traces_under_the_endpoint() {
        assert_eq!(traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/otel"), "https://c/otel/v1/traces");
    }
}
