//! `canopy serve` and `canopy admin ...`: configuration, start-up, shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use canopy_domain::clock::Clock;
use canopy_engine::mailer::Mailer;
use canopy_engine::replication::{Adapters, ReplicationConfig, Replicator};
use canopy_server::listen::ListenLimits;
use canopy_server::{AppState, BootstrapOutcome, ServerConfig};
use canopy_store::{SecretKey, Store};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

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

/// The configuration of `canopy serve`: flags, else environment, else defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
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
    /// The key that encrypts platform secrets at rest, base64 of 32 bytes, from
    /// the environment only (`CANOPY_SECRET_KEY`); every node of one
    /// installation needs the same. Without it, --secret-key-file is used.
    #[arg(skip = std::env::var("CANOPY_SECRET_KEY").ok().map(Secret))]
    pub secret_key: Option<Secret>,
    /// File holding the secret key; created with a new key on first start.
    #[arg(long, env = "CANOPY_SECRET_KEY_FILE", default_value = "canopy.key")]
    pub secret_key_file: std::path::PathBuf,
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
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created when missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long = "database", env = "CANOPY_DATABASE_URL", default_value = "sqlite://canopy.db")]
    pub url: Secret,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Verify the hash chain of every workspace's history; exit 1 at the first broken link.
    VerifyHistory {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
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
    let node = args.node_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(default_node_name);
    tracing::info!(%node, "this node's name in replication leases");
    let replication = ReplicationConfig {
        node,
        lease: time::Duration::seconds(i64::from(args.replication_lease_seconds)),
        workers: args.replication_workers as usize,
        per_platform: args.platform_concurrency as usize,
        reconcile_every: time::Duration::minutes(i64::from(args.reconcile_minutes)),
        ..ReplicationConfig::default()
    };
    let replicator =
        Arc::new(Replicator::new(store.clone(), clock.clone(), secret_key.clone(), Adapters::default(), replication));
    tokio::spawn(replicator.clone().run());
    tokio::spawn(canopy_engine::expiry::run(store.clone(), clock.clone()));
    tokio::spawn(canopy_engine::payments::run(store.clone(), clock.clone()));
    let state = AppState::new(
        store.clone(),
        clock,
        ServerConfig {
            session_ttl: time::Duration::minutes(i64::from(args.session_minutes)),
            public_url: args.public_url,
            secret_key,
            trusted_proxies: args.trusted_proxies.clone(),
        },
        replicator,
    );
    match &args.smtp_url {
        Some(url) => {
            let mailer = Mailer::new(url.expose(), &args.mail_from).context("configuring e-mail")?;
            tokio::spawn(canopy_engine::mailer::run(
                store.clone(),
                mailer,
                state.clock.clone(),
                Duration::from_secs(10),
            ));
        }
        None => tracing::warn!("no SMTP server configured (--smtp-url): e-mails wait in the outbox until one is"),
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "canopy is serving");
    let limits = ListenLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout_seconds.into()),
        body_read_timeout: Duration::from_secs(args.body_timeout_seconds.into()),
        max_connections: args.max_connections as usize,
        ..ListenLimits::default()
    };
    canopy_server::listen::serve(listener, canopy_server::router(state), limits, shutdown_signal()).await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
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
    match std::fs::read_to_string(file) {
        Ok(text) => {
            SecretKey::from_base64(&text).with_context(|| format!("reading the secret key in {}", file.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f =
                options.open(file).with_context(|| format!("creating the secret key file {}", file.display()))?;
            std::io::Write::write_all(&mut f, key.to_base64().as_bytes())?;
            tracing::warn!(file = %file.display(), "created a new key for platform secrets; back it up: without it they cannot be read");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the secret key in {}", file.display())),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

pub async fn admin(cmd: AdminCommand) -> ExitCode {
    match cmd {
        AdminCommand::VerifyHistory { database, json } => {
            let store = match Store::connect(database.url.expose()).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: opening the database: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let v = match store.verify_history().await {
                Ok(v) => canopy_server::routes::admin::to_verification(v),
                Err(e) => {
                    eprintln!("error: reading the history: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if let Some(b) = &v.first_broken {
                println!("history is BROKEN in chain {} at event #{}: {}", b.chain, b.seq, b.reason);
                if let Some(id) = &b.event_id {
                    println!("  event id: {id}");
                }
            } else {
                println!(
                    "history verified: {} chains, {} events, every link intact",
                    v.chains_checked, v.events_checked
                );
            }
            if v.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
