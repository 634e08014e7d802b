//! `canopy serve` and `canopy admin ...`: configuration, start-up, shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use canopy_domain::checkpoint::HistoryKey;
use canopy_domain::clock::Clock;
use canopy_engine::checkpoints::{CheckpointExport, Webhook};
use canopy_engine::mailer::Mailer;
use canopy_engine::replication::{Adapters, ReplicationConfig, Replicator};
use canopy_server::listen::ListenLimits;
use canopy_server::{AppState, BootstrapOutcome, ServerConfig};
use canopy_store::{SecretKey, Store};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// The configuration of `canopy serve`: flags, else environment, else the
/// configuration file (`crate::config`), else defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A configuration file (TOML) under the environment and the flags: a
    /// key per setting, named like its flag (`session_minutes = 60`,
    /// `trusted_proxies = ["10.0.0.1"]`). Keep it readable by Canopy's user
    /// only when it holds secrets.
    #[arg(long, env = "CANOPY_CONFIG", value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    /// Print the effective configuration as TOML (secrets as "***", each
    /// value's source in a comment) and exit, without opening the database.
    #[arg(long)]
    pub print_config: bool,
    /// Address to listen on.
    #[arg(long, env = "CANOPY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Password of the `admin` account created on an empty database, from the
    /// environment only (`CANOPY_ADMIN_PASSWORD`: a flag would show in `ps`);
    /// without it a password is generated and printed once on the terminal.
    #[arg(skip = std::env::var("CANOPY_ADMIN_PASSWORD").ok().map(Secret))]
    pub admin_password: Option<Secret>,
    /// SMTP server for e-mails: `smtp://host:port` (plain), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465`, with optional `user:password@`. Without it,
    /// e-mails wait in the outbox until one is configured.
    #[arg(long, env = "CANOPY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// Sender address of e-mails.
    #[arg(long, env = "CANOPY_MAIL_FROM", default_value = "Canopy <canopy@localhost>")]
    pub mail_from: String,
    /// The URL users reach Canopy at, used in links in e-mails.
    #[arg(long, env = "CANOPY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// An OpenID Connect provider people sign in with besides local accounts
    /// (its issuer URL, e.g. `https://login.example.org`): the sign-in page
    /// offers "Sign in with --oidc-name", the provider sends people back to
    /// `{--public-url}/auth/oidc/callback`. Needs --oidc-client-id, a client
    /// secret and --public-url.
    #[arg(long, env = "CANOPY_OIDC_ISSUER", value_name = "URL", requires = "oidc_client_id")]
    pub oidc_issuer: Option<String>,
    /// Canopy's client id at the OpenID Connect provider.
    #[arg(long, env = "CANOPY_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The client secret at the OpenID Connect provider, from the
    /// environment only (`CANOPY_OIDC_CLIENT_SECRET`); without it,
    /// --oidc-client-secret-file.
    #[arg(skip = std::env::var("CANOPY_OIDC_CLIENT_SECRET").ok().map(Secret))]
    pub oidc_client_secret: Option<Secret>,
    /// File holding the client secret at the OpenID Connect provider.
    #[arg(long, env = "CANOPY_OIDC_CLIENT_SECRET_FILE", value_name = "PATH")]
    pub oidc_client_secret_file: Option<std::path::PathBuf>,
    /// The provider's name on the sign-in page: "Sign in with NAME".
    #[arg(long, env = "CANOPY_OIDC_NAME", default_value = "single sign-on")]
    pub oidc_name: String,
    /// Who may sign in with a password: `all`, or `admins` alone (their
    /// break-glass accounts) where everyone else signs in through
    /// --oidc-issuer.
    #[arg(long, env = "CANOPY_LOCAL_SIGN_IN", default_value = "all")]
    pub local_sign_in: canopy_domain::signin::LocalSignIn,
    /// The key that encrypts platform secrets at rest, base64 of 32 bytes, from
    /// the environment only (`CANOPY_SECRET_KEY`); every node of one
    /// installation needs the same. Without it, --secret-key-file is used.
    #[arg(skip = std::env::var("CANOPY_SECRET_KEY").ok().map(Secret))]
    pub secret_key: Option<Secret>,
    /// File holding the secret key; created with a new key on first start.
    #[arg(long, env = "CANOPY_SECRET_KEY_FILE", default_value = "canopy.key")]
    pub secret_key_file: std::path::PathBuf,
    /// The key that signs history checkpoints (SE7), base64 of its 32-byte
    /// seed, from the environment only (`CANOPY_HISTORY_KEY`); every node of
    /// one installation needs the same. Without it, --history-key-file is used.
    #[arg(skip = std::env::var("CANOPY_HISTORY_KEY").ok().map(Secret))]
    pub history_key: Option<Secret>,
    /// File holding the key that signs history checkpoints; created with a new
    /// key on first start (default: `canopy-history.key` beside the secret
    /// key file). Keep it where the database and its backups are not: whoever
    /// holds both could forge checkpoints of a tampered history.
    #[arg(long, env = "CANOPY_HISTORY_KEY_FILE")]
    pub history_key_file: Option<std::path::PathBuf>,
    /// Append a signed checkpoint of every history chain, one JSON line each,
    /// to this file every --checkpoint-every-minutes (keep it off the database's machine).
    #[arg(long, env = "CANOPY_CHECKPOINT_FILE")]
    pub checkpoint_file: Option<std::path::PathBuf>,
    /// POST the signed checkpoints of every history chain as JSON to this URL
    /// every --checkpoint-every-minutes.
    #[arg(long, env = "CANOPY_CHECKPOINT_WEBHOOK", hide_env_values = true)]
    pub checkpoint_webhook: Option<Secret>,
    /// How often checkpoints go to --checkpoint-file and --checkpoint-webhook, in minutes.
    #[arg(long, env = "CANOPY_CHECKPOINT_EVERY_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    pub checkpoint_every_minutes: u32,
    /// Tenants this node replicates at once.
    #[arg(long, env = "CANOPY_REPLICATION_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub replication_workers: u32,
    /// Tenants of one platform this node replicates at once.
    #[arg(long, env = "CANOPY_PLATFORM_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub platform_concurrency: u32,
    /// How long a tenant a node works on stays reserved without the node's
    /// heartbeat, in seconds: after a crash, its tenants are taken up again then.
    #[arg(long, env = "CANOPY_REPLICATION_LEASE_SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub replication_lease_seconds: u32,
    /// This node's name in replication leases and the history (default: host name and process id).
    #[arg(long, env = "CANOPY_NODE_NAME")]
    pub node_name: Option<String>,
    /// Every tenant is reconciled (drift repaired) at least this often, in minutes.
    #[arg(long, env = "CANOPY_RECONCILE_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    pub reconcile_minutes: u32,
    /// A connection that has not sent a request's headers within this many
    /// seconds is closed (slow clients cannot hold connections).
    #[arg(long, env = "CANOPY_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub header_timeout_seconds: u32,
    /// A request whose body has not arrived within this many seconds fails (408).
    #[arg(long, env = "CANOPY_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub body_timeout_seconds: u32,
    /// Connections served at once; more wait until one closes.
    #[arg(long, env = "CANOPY_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// A reverse proxy in front of Canopy whose `X-Forwarded-For` names the
    /// client (repeat for several, or comma-separated in the environment);
    /// sign-in throttling counts per client address.
    #[arg(long = "trusted-proxy", env = "CANOPY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long a session token stays valid, in minutes.
    #[arg(long, env = "CANOPY_SESSION_MINUTES", default_value_t = 720, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    pub session_minutes: u32,
    /// How long a sign-in to the web UI stays valid unused, in minutes (it
    /// also ends after --session-minutes in any case).
    #[arg(long, env = "CANOPY_SESSION_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    pub session_idle_minutes: u32,
    /// On SIGTERM or Ctrl-C, how long requests and replication runs in
    /// progress get to finish, in seconds. Runs still going then stop at their
    /// next step between platform calls (after at most 5 s more for the call
    /// in progress) and hand their tenants back to the other nodes at once.
    #[arg(long, env = "CANOPY_SHUTDOWN_GRACE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub shutdown_grace_seconds: u32,
    /// The bearer token `GET /metrics` wants (prefer the environment or the
    /// configuration file: a flag shows in `ps`). Without it the metrics are
    /// open: they name no person, tenant or address.
    #[arg(long, env = "CANOPY_METRICS_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub metrics_token: Option<Secret>,
    /// Export traces over OTLP (HTTP/protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (traces go to `/v1/traces` under it). Without
    /// it nothing is exported.
    #[arg(long, env = "CANOPY_OTLP_ENDPOINT", value_name = "URL", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// What is logged (to stderr): a `tracing` filter such as `info,sqlx=warn`.
    #[arg(long, env = "CANOPY_LOG", default_value = "info,sqlx=warn", value_parser = parse_log_filter)]
    pub log: String,
}

/// The OpenID Connect provider of the flags, its secret from the environment
/// or its file; refused at start when half configured.
fn oidc_settings(args: &ServeArgs) -> anyhow::Result<Option<canopy_server::oidc::OidcSettings>> {
    let (Some(issuer), Some(client_id)) = (&args.oidc_issuer, &args.oidc_client_id) else {
        if args.local_sign_in == canopy_domain::signin::LocalSignIn::AdminsOnly {
            anyhow::bail!("--local-sign-in admins needs --oidc-issuer: nobody else could sign in");
        }
        return Ok(None);
    };
    if args.public_url.is_none() {
        anyhow::bail!(
            "--oidc-issuer needs --public-url: the provider sends people back to {{public_url}}/auth/oidc/callback"
        );
    }
    if !canopy_server::oidc::secure_url(issuer) {
        anyhow::bail!("--oidc-issuer must be an https:// URL (plain http only to 127.0.0.1 or localhost)");
    }
    let secret = match (&args.oidc_client_secret, &args.oidc_client_secret_file) {
        (Some(s), _) => s.expose().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the OpenID Connect client secret from {}", file.display()))?
            .trim()
            .to_owned(),
        (None, None) => anyhow::bail!(
            "--oidc-issuer needs the client secret: CANOPY_OIDC_CLIENT_SECRET or --oidc-client-secret-file"
        ),
    };
    if secret.is_empty() {
        anyhow::bail!("the OpenID Connect client secret is empty");
    }
    Ok(Some(canopy_server::oidc::OidcSettings {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret: secret,
        display_name: args.oidc_name.clone(),
    }))
}

/// A metrics token: 16 to 512 visible ASCII characters.
fn parse_token(s: &str) -> Result<Secret, String> {
    if !(16..=512).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 16 to 512 visible ASCII characters".into());
    }
    Ok(Secret(s.to_owned()))
}

/// An OTLP collector's base URL: `http` or `https`, at most 2,000 characters.
fn parse_otlp_endpoint(s: &str) -> Result<String, String> {
    if s.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(s.to_owned())
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s).map_err(|e| format!("not a tracing filter: {e}"))?;
    Ok(s.to_owned())
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created when missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long = "database", env = "CANOPY_DATABASE_URL", default_value = "sqlite://canopy.db")]
    pub url: Secret,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Verify the hash chain of every workspace's history and the
    /// installation's, that no chain is missing, and the checkpoints given;
    /// exit 1 when anything is wrong.
    VerifyHistory {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Checkpoints kept from earlier (`canopy history verify
        /// --save-checkpoints`, or the file `canopy serve --checkpoint-file`
        /// appends to): each must be signed by the installation's history key
        /// and still contained in its chain.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<std::path::PathBuf>,
        /// The installation's history key (for --checkpoints), unless
        /// `CANOPY_HISTORY_KEY` holds it.
        #[arg(long, env = "CANOPY_HISTORY_KEY_FILE", default_value = "canopy-history.key")]
        history_key_file: std::path::PathBuf,
    },
}

/// The wall clock, at the store's precision (microseconds), so that what a
/// request answers equals what a later read of the same resource answers.
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_microsecond(now.microsecond()).unwrap_or(now)
    }
}

/// Run `canopy serve` with its effective configuration (the subscriber,
/// `crate::telemetry`, is installed already).
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let oidc = oidc_settings(&args)?;
    let store = Store::connect(args.database.url.expose()).await.context("opening the database")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let outcome = canopy_server::bootstrap(&store, clock.now(), args.admin_password.map(|s| s.0))
        .await
        .context("creating the admin account")?;
    match outcome {
        BootstrapOutcome::AlreadyInitialised => {}
        BootstrapOutcome::AdminCreated => {
            tracing::info!("created the installation admin `admin` with the password from CANOPY_ADMIN_PASSWORD");
        }
        BootstrapOutcome::AdminCreatedWithGeneratedPassword(password) => {
            // On the terminal only, once: never through tracing, which may go to a file.
            eprintln!("Created the installation admin account.");
            eprintln!("  username: admin");
            eprintln!("  password: {password}");
            eprintln!("This password is shown only now; sign in with `canopy login` and change it.");
        }
    }
    let secret_key = load_secret_key(args.secret_key.as_ref(), &args.secret_key_file)?;
    let history_key_file = args.history_key_file.clone().unwrap_or_else(|| {
        args.secret_key_file.parent().unwrap_or(std::path::Path::new("")).join("canopy-history.key")
    });
    let history_key = load_history_key(args.history_key.as_ref(), &history_key_file)?;
    let export = CheckpointExport {
        file: args.checkpoint_file.clone(),
        webhook: args
            .checkpoint_webhook
            .as_ref()
            .map(|url| Webhook::new(url.expose()))
            .transpose()
            .context("--checkpoint-webhook")?,
    };
    // chains made before their creation was recorded in the installation chain
    match store.record_unrecorded_chains(clock.now()).await.context("recording history chains")? {
        0 => {}
        n => tracing::info!(chains = n, "recorded the creation of history chains in the installation history"),
    }
    let node = args.node_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(default_node_name);
    tracing::info!(%node, "this node's name in replication leases");
    let grace = Duration::from_secs(args.shutdown_grace_seconds.into());
    let replication = ReplicationConfig {
        node,
        lease: time::Duration::seconds(i64::from(args.replication_lease_seconds)),
        workers: args.replication_workers as usize,
        per_platform: args.platform_concurrency as usize,
        reconcile_every: time::Duration::minutes(i64::from(args.reconcile_minutes)),
        stop_grace: grace,
        ..ReplicationConfig::default()
    };
    let call_wait = replication.stop_call_wait;
    let replicator =
        Arc::new(Replicator::new(store.clone(), clock.clone(), secret_key.clone(), Adapters::default(), replication));
    // this node's metrics: the engine's instruments beside the server's
    let mut registry = prometheus_client::registry::Registry::default();
    replicator.metrics().register(&mut registry);
    let mailer = match &args.smtp_url {
        Some(url) => Some(Mailer::new(url.expose(), &args.mail_from).context("configuring e-mail")?),
        None => {
            tracing::warn!("no SMTP server configured (--smtp-url): e-mails wait in the outbox until one is");
            None
        }
    };
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;

    // every loop of the engine stops when this is cancelled, and is waited for
    let stop = CancellationToken::new();
    let replicating = tokio::spawn(replicator.clone().run(stop.clone()));
    let mut jobs = JoinSet::new();
    jobs.spawn(canopy_engine::expiry::run(store.clone(), clock.clone(), stop.clone()));
    jobs.spawn(canopy_engine::payments::run(store.clone(), clock.clone(), stop.clone()));
    if export.file.is_some() || export.webhook.is_some() {
        let every = Duration::from_secs(u64::from(args.checkpoint_every_minutes) * 60);
        let key = history_key.clone();
        jobs.spawn(canopy_engine::checkpoints::run(store.clone(), clock.clone(), key, export, every, stop.clone()));
    }
    if let Some(mailer) = mailer {
        let every = Duration::from_secs(10);
        jobs.spawn(canopy_engine::mailer::run(store.clone(), mailer, clock.clone(), every, stop.clone()));
    }
    let state = AppState::new(
        store.clone(),
        clock,
        ServerConfig {
            session_ttl: time::Duration::minutes(i64::from(args.session_minutes)),
            session_idle: time::Duration::minutes(i64::from(args.session_idle_minutes)),
            public_url: args.public_url,
            secret_key,
            trusted_proxies: args.trusted_proxies.clone(),
            history_key,
            metrics_token: args.metrics_token.as_ref().map(|t| t.expose().to_owned()),
            oidc,
            local_sign_in: args.local_sign_in,
        },
        replicator,
    )
    .with_registry(registry);
    let stop_signal = shutdown_signal();
    tracing::info!(%address, "canopy is serving");
    let limits = ListenLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout_seconds.into()),
        body_read_timeout: Duration::from_secs(args.body_timeout_seconds.into()),
        max_connections: args.max_connections as usize,
        shutdown_grace: grace,
    };
    // a stop, in order: the listener takes no more connections and the
    // engine no more work; then requests and replication runs in progress
    // get the grace period, side by side
    let (began_tx, began) = tokio::sync::oneshot::channel();
    let signalled = {
        let stop = stop.clone();
        async move {
            stop_signal.await;
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "stopping: requests and replication runs in progress get the grace period"
            );
            let _ = began_tx.send(Instant::now());
            stop.cancel();
        }
    };
    let served = canopy_server::listen::serve(listener, canopy_server::router(state), limits, signalled).await;
    // a listener that failed stops the engine too
    stop.cancel();
    let began = began.await.unwrap_or_else(|_| Instant::now());
    stop_engine(jobs, replicating, began + grace, call_wait).await;
    if tokio::time::timeout(CLOSE_WAIT, store.close()).await.is_err() {
        tracing::warn!("database connections still in use at exit were dropped");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// After the engine's work: how long handing tenants back and closing the
/// database may take.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Wait for the engine's loops once `stop` is cancelled. The jobs (e-mail,
/// expiry, payments, checkpoints) get until `grace_ends`, then are cut: each
/// is safe to cut between or inside its transactions, and a mail cut while
/// being sent is sent again when its lease runs out. Replication bounds its
/// own stop (the grace period, then `call_wait` for the platform calls in
/// progress) and hands its tenants back; it is cut only if that hangs.
async fn stop_engine(mut jobs: JoinSet<()>, mut replicating: JoinHandle<()>, grace_ends: Instant, call_wait: Duration) {
    let all_jobs = async {
        while let Some(done) = jobs.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a background job panicked");
            }
        }
    };
    if tokio::time::timeout_at(grace_ends, all_jobs).await.is_err() {
        tracing::warn!("background jobs still busy at the end of the grace period were stopped");
        jobs.shutdown().await;
    }
    match tokio::time::timeout_at(grace_ends + call_wait + CLOSE_WAIT, &mut replicating).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "replication panicked"),
        Err(_) => {
            tracing::warn!("replication did not stop in time; its tenants are taken up when their leases run out");
            replicating.abort();
        }
    }
}

/// `HOST-PID`: unique among the nodes of one installation at any moment.
fn default_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "canopy".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The key from `CANOPY_SECRET_KEY`, else from `file`, else a new one written to `file`.
fn load_secret_key(from_env: Option<&Secret>, file: &std::path::Path) -> anyhow::Result<SecretKey> {
    if let Some(k) = from_env {
        return SecretKey::from_base64(k.expose()).context("CANOPY_SECRET_KEY");
    }
    let (text, created) = read_or_create_key_file(file, "secret key", || Ok(SecretKey::generate()?.to_base64()))?;
    let key = SecretKey::from_base64(&text).with_context(|| format!("reading the secret key in {}", file.display()))?;
    if created {
        tracing::warn!(file = %file.display(), "created a new key for platform secrets; back it up: without it they cannot be read");
    }
    Ok(key)
}

/// The history key from `CANOPY_HISTORY_KEY`, else from `file`, else a new one written to `file`.
fn load_history_key(from_env: Option<&Secret>, file: &std::path::Path) -> anyhow::Result<HistoryKey> {
    if let Some(k) = from_env {
        return HistoryKey::from_base64(k.expose()).context("CANOPY_HISTORY_KEY");
    }
    let (text, created) = read_or_create_key_file(file, "history key", || {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random bytes: {e}"))?;
        Ok(HistoryKey::from_bytes(seed).to_base64())
    })?;
    let key =
        HistoryKey::from_base64(&text).with_context(|| format!("reading the history key in {}", file.display()))?;
    if created {
        tracing::warn!(file = %file.display(), key_id = %key.key_id(),
            "created a new key that signs history checkpoints; keep it apart from the database and back it up");
    }
    Ok(key)
}

/// The text of a key file, or a new key (`generate`'s text) written to a new
/// file readable by its owner only; `true` when it was created.
fn read_or_create_key_file(
    file: &std::path::Path,
    what: &str,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok((text, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = generate()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(file).with_context(|| format!("creating the {what} file {}", file.display()))?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            Ok((text, true))
        }
        Err(e) => Err(e).with_context(|| format!("reading the {what} in {}", file.display())),
    }
}

/// SIGTERM or Ctrl-C, listened for from the call on: called before the
/// server says it serves, so that a stop sent as soon as it does is never
/// met by the signal's default action (which kills the process unflushed).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async fn received(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! { _ = received(term) => {}, _ = received(interrupt) => {} }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn admin(cmd: AdminCommand) -> ExitCode {
    match cmd {
        AdminCommand::VerifyHistory { database, json, checkpoints, history_key_file } => {
            match verify_history(&database, json, checkpoints.as_deref(), &history_key_file).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `canopy admin verify-history`: whether the history verified.
async fn verify_history(
    database: &DatabaseArgs,
    json: bool,
    checkpoints: Option<&std::path::Path>,
    history_key_file: &std::path::Path,
) -> anyhow::Result<bool> {
    // the file and the key first: a mistake there needs no database
    let given = match checkpoints {
        Some(path) => {
            let cps: Vec<canopy_domain::checkpoint::Checkpoint> = crate::checkpoints_file::read(path)?;
            for (i, cp) in cps.iter().enumerate() {
                if let Some((field, e)) = cp.invalid_fields().into_iter().next() {
                    anyhow::bail!("{}: checkpoint #{} ({}): {field} {e}", path.display(), i + 1, cp.label);
                }
            }
            let key = match std::env::var("CANOPY_HISTORY_KEY") {
                Ok(k) => HistoryKey::from_base64(&k).context("CANOPY_HISTORY_KEY")?,
                Err(_) => {
                    let text = std::fs::read_to_string(history_key_file).with_context(|| {
                        format!(
                            "reading the history key in {} (--history-key-file, or CANOPY_HISTORY_KEY)",
                            history_key_file.display()
                        )
                    })?;
                    HistoryKey::from_base64(&text)
                        .with_context(|| format!("reading the history key in {}", history_key_file.display()))?
                }
            };
            Some((key.public_key(), cps))
        }
        None => None,
    };
    let store = Store::connect(database.url.expose()).await.context("opening the database")?;
    let v = store
        .verify_history(given.as_ref().map(|(k, cps)| (k, cps.as_slice())))
        .await
        .context("reading the history")?;
    let v = canopy_server::routes::admin::to_verification(v);
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if v.ok {
        let checked = if given.is_some() {
            format!(", {} checkpoints still contained", v.checkpoints_checked)
        } else {
            String::new()
        };
        println!(
            "history verified: {} chains, {} events{checked}, every link intact",
            v.chains_checked, v.events_checked
        );
    } else {
        for p in &v.problems {
            let at = p.seq.map(|s| format!(" at event #{s}")).unwrap_or_default();
            println!("history is BROKEN in chain {}{at}: {}", p.chain, p.reason);
            if let Some(id) = &p.event_id {
                println!("  event id: {id}");
            }
        }
    }
    Ok(v.ok)
}
