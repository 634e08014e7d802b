//! SE1: memory and CPU of a real `canopy serve` under bursts of sign-ins.
//!
//! Every `POST /api/v1/auth/token` checks a password with argon2id, which
//! takes 19 MiB while it runs. The server hashes at most one password per
//! core at once, queues a bounded number of sign-ins briefly, and answers
//! what exceeds that with 503 and `Retry-After` (throttled attempts get 429
//! and `Retry-After`). This bench starts the `canopy` binary in a temporary
//! directory, fires bursts of concurrent sign-ins at it (a third with the
//! admin's password, a third with a wrong one, a third with unknown names),
//! each from its own loopback address so that per-address throttling does
//! not answer them all, and samples the process's memory from `/proc`. The
//! bound is `cores × 19 MiB + the RSS before the bursts`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// The admin's password (`CANOPY_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "canopy-bench-admin-password";
/// A fixed key, so that `canopy serve` writes no key file.
const SECRET_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// What one argon2id hash holds while it runs (the default parameters, m = 19456 KiB).
const HASH_KIB: u64 = 19 * 1024;
/// How often memory is sampled during the bursts.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Idle time after the last burst before the final reading.
const IDLE_AFTER: Duration = Duration::from_secs(2);

/// What `canopy-bench signin` was asked for.
pub struct Options {
    pub canopy_bin: PathBuf,
    pub burst: usize,
    pub bursts: usize,
    pub pause: Duration,
}

/// What one sign-in of a burst tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RightPassword,
    WrongPassword,
    UnknownUser,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::RightPassword, Kind::WrongPassword, Kind::UnknownUser];

    /// The mix of a burst: one of each kind in turn.
    fn of(i: usize) -> Kind {
        Self::ALL[i % 3]
    }

    fn index(self) -> usize {
        match self {
            Kind::RightPassword => 0,
            Kind::WrongPassword => 1,
            Kind::UnknownUser => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::RightPassword => "admin, right password",
            Kind::WrongPassword => "admin, wrong password",
            Kind::UnknownUser => "unknown username",
        }
    }

    fn body(self) -> Value {
        match self {
            Kind::RightPassword => json!({"username": "admin", "password": ADMIN_PASSWORD}),
            Kind::WrongPassword => json!({"username": "admin", "password": "not-the-admin-password"}),
            Kind::UnknownUser => {
                json!({"username": format!("nobody-{}", uuid::Uuid::new_v4().simple()), "password": "a-guessed-password"})
            }
        }
    }
}

/// The answer to one sign-in.
enum Outcome {
    /// The HTTP status, and whether a 429 or 503 lacked a valid `Retry-After`.
    Status { status: u16, no_retry_after: bool },
    /// No HTTP answer (connection refused or reset, timeout).
    Transport,
}

/// Answers counted by status.
#[derive(Default, Clone)]
struct Counts {
    ok: u64,
    unauthorized: u64,
    too_many: u64,
    unavailable: u64,
    other: BTreeMap<u16, u64>,
    transport: u64,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Status { status: 200, .. } => self.ok += 1,
            Outcome::Status { status: 401, .. } => self.unauthorized += 1,
            Outcome::Status { status: 429, .. } => self.too_many += 1,
            Outcome::Status { status: 503, .. } => self.unavailable += 1,
            Outcome::Status { status, .. } => *self.other.entry(*status).or_default() += 1,
            Outcome::Transport => self.transport += 1,
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.unauthorized += other.unauthorized;
        self.too_many += other.too_many;
        self.unavailable += other.unavailable;
        self.transport += other.transport;
        for (code, n) in &other.other {
            *self.other.entry(*code).or_default() += n;
        }
    }

    fn other_total(&self) -> u64 {
        self.other.values().sum()
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "200 ×{}, 401 ×{}, 429 ×{}, 503 ×{}, other ×{}",
            self.ok,
            self.unauthorized,
            self.too_many,
            self.unavailable,
            self.other_total()
        );
        if !self.other.is_empty() {
            let codes: Vec<String> = self.other.iter().map(|(code, n)| format!("{code} ×{n}")).collect();
            s.push_str(&format!(" ({})", codes.join(", ")));
        }
        s.push_str(&format!(", transport errors ×{}", self.transport));
        s
    }
}

/// The answers of a burst, in all and by kind of sign-in.
#[derive(Default)]
struct Tally {
    all: Counts,
    by_kind: [Counts; 3],
    no_retry_after: u64,
}

impl Tally {
    fn add(&mut self, kind: Kind, outcome: &Outcome) {
        self.all.add(outcome);
        self.by_kind[kind.index()].add(outcome);
        if let Outcome::Status { no_retry_after: true, .. } = outcome {
            self.no_retry_after += 1;
        }
    }
}

/// Resident memory of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now.
    pub(crate) rss: u64,
    /// `VmHWM`: the highest resident so far.
    pub(crate) hwm: u64,
    /// `Threads`: not memory, but each thread may hold a malloc arena.
    threads: u64,
}

pub(crate) fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Memory { rss: field("VmRSS:")?, hwm: field("VmHWM:")?, threads: field("Threads:")? })
}

/// CPU time of a process so far (user + system), from `/proc/PID/stat`.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The memory of `pid` now, or an error naming when it was read.
fn memory_now(pid: u32, when: &str) -> anyhow::Result<Memory> {
    memory(pid).with_context(|| format!("reading /proc/{pid}/status {when} (did canopy serve exit?)"))
}

/// Samples the resident memory of a process on its own thread (not on the
/// runtime that fires the sign-ins, so that the bursts do not delay it).
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_rss: Arc<AtomicU64>,
    peak_threads: Arc<AtomicU64>,
    samples: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

/// What the sampler saw.
struct Sampled {
    /// The highest RSS sampled, KiB.
    peak_rss: u64,
    /// The most threads sampled.
    peak_threads: u64,
    samples: u64,
}

impl Sampler {
    fn start(pid: u32) -> anyhow::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let peak_threads = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak_rss, peak_threads, samples) =
                (stop.clone(), peak_rss.clone(), peak_threads.clone(), samples.clone());
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(m) = memory(pid) {
                            peak_rss.fetch_max(m.rss, Ordering::Relaxed);
                            peak_threads.fetch_max(m.threads, Ordering::Relaxed);
                            samples.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .context("starting the memory sampler")?
        };
        Ok(Sampler { stop, peak_rss, peak_threads, samples, thread })
    }

    /// Stop sampling.
    fn finish(self) -> Sampled {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        Sampled {
            peak_rss: self.peak_rss.load(Ordering::Relaxed),
            peak_threads: self.peak_threads.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
        }
    }
}

/// The `i`-th source address of the bench: 127.X.Y.Z with X from 1, so that
/// every sign-in comes from its own client address (Linux routes all of
/// 127.0.0.0/8 to the loopback interface).
fn source_address(i: usize) -> anyhow::Result<IpAddr> {
    let z = 1 + i % 254;
    let rest = i / 254;
    let (x, y) = (1 + rest / 256, rest % 256);
    let octet = |v: usize| u8::try_from(v).ok().filter(|o| *o < 255);
    match (octet(x), octet(y), octet(z)) {
        (Some(x), Some(y), Some(z)) => Ok(IpAddr::from([127, x, y, z])),
        _ => bail!("too many sign-ins for distinct loopback addresses (at most {})", 254 * 256 * 254),
    }
}

/// Start `canopy serve` in `dir` on a fresh SQLite database; returns the
/// process and the address it serves on. Its standard error is drained
/// afterwards so that it never blocks on a full pipe.
pub async fn start_server(bin: &Path, dir: &Path, database: &str) -> anyhow::Result<(Child, String)> {
    let (child, addr, _) = start_server_timed(bin, dir, database).await?;
    Ok((child, addr))
}

/// [`start_server`], with each line the server logged until it served and
/// when it came, counted from the spawn.
pub async fn start_server_timed(
    bin: &Path,
    dir: &Path,
    database: &str,
) -> anyhow::Result<(Child, String, Vec<(Duration, String)>)> {
    let mut cmd = Command::new(bin);
    // nothing from the caller's environment changes the server's limits
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CANOPY_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .current_dir(dir)
        .env("CANOPY_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CANOPY_SECRET_KEY", SECRET_KEY)
        .env("CANOPY_HISTORY_KEY", SECRET_KEY)
        .env("CANOPY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("could not start {}", bin.display()))?;
    let mut timed = Vec::new();
    let stderr = child.stderr.take().context("canopy serve's standard error was not captured")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut printed = String::new();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            printed.push_str(&line);
            printed.push('\n');
            timed.push((spawned.elapsed(), line.clone()));
            if let Some(addr) = line.split_once("address=").and_then(|(_, rest)| rest.split_whitespace().next()) {
                return Ok(Some(addr.to_owned()));
            }
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let addr = match waited {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) => {
            let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            bail!("canopy serve exited ({status}) before serving; it printed:\n{printed}");
        }
        Ok(Err(e)) => return Err(e).context("reading canopy serve's standard error"),
        Err(_) => bail!("canopy serve did not start serving within 60 s; it printed:\n{printed}"),
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, timed))
}

/// One sign-in on its own client (its own connection and source address).
async fn sign_in(client: reqwest::Client, url: String, body: Value) -> Outcome {
    let Ok(response) = client.post(url).json(&body).send().await else { return Outcome::Transport };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let no_retry_after = matches!(status, 429 | 503) && retry_after.is_none();
    let _ = response.bytes().await;
    Outcome::Status { status, no_retry_after }
}

/// Fire `n` sign-ins at once, the `i`-th from source address `first + i`;
/// their answers and the time until the last one.
async fn burst(addr: &str, first: usize, n: usize) -> anyhow::Result<(Tally, Duration)> {
    let url = format!("http://{addr}/api/v1/auth/token");
    // the clients are built before the clock starts
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let client = reqwest::Client::builder()
            .local_address(source_address(first + i)?)
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building an HTTP client")?;
        let kind = Kind::of(i);
        requests.push((kind, client, kind.body()));
    }
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (kind, client, body) in requests {
        let url = url.clone();
        tasks.spawn(async move { (kind, sign_in(client, url, body).await) });
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let (kind, outcome) = joined.context("a sign-in task failed")?;
        tally.add(kind, &outcome);
    }
    Ok((tally, started.elapsed()))
}

/// `canopy-bench signin`.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    if opts.burst == 0 || opts.bursts == 0 {
        bail!("--burst and --bursts must be at least 1");
    }
    if !opts.canopy_bin.is_file() {
        bail!(
            "the canopy binary {} does not exist: run `cargo build --release -p canopy` first, or name it with --canopy-bin PATH",
            opts.canopy_bin.display()
        );
    }
    // the server runs in a temporary directory: a relative path would name nothing there
    let bin = std::fs::canonicalize(&opts.canopy_bin)
        .with_context(|| format!("resolving the path of {}", opts.canopy_bin.display()))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let started = Instant::now();
    let database = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (child, addr) = start_server(&bin, dir.path(), &database)
        .await
        .with_context(|| format!("the sign-in bench could not start {} serve", bin.display()))?;
    let pid = child.id().context("canopy serve has no process id (did it exit?)")?;
    let up = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await; // start-up work settles
    let before = memory_now(pid, "before the bursts")?;
    let cpu_before = cpu_time(pid);
    println!(
        "SE1 set-up: canopy serve (pid {pid}) serving at {addr} after {:.1} s; RSS {:.1} MiB (peak so far {:.1} MiB); {cores} cores",
        up.as_secs_f64(),
        mib(before.rss),
        mib(before.hwm)
    );
    println!(
        "SE1: {} bursts of {} sign-ins at once (a third each: admin with the right password, admin with a wrong one, unknown usernames), each from its own loopback address",
        opts.bursts, opts.burst
    );

    let sampler = Sampler::start(pid)?;
    let mut no_retry_after = 0;
    let mut totals = Counts::default();
    let mut peak_read = before.rss; // the highest RSS of the readings between bursts
    for b in 0..opts.bursts {
        if b > 0 {
            tokio::time::sleep(opts.pause).await;
        }
        let cpu0 = cpu_time(pid);
        let (tally, took) = burst(&addr, b * opts.burst, opts.burst).await?;
        let cpu = cpu0.zip(cpu_time(pid)).map(|(a, z)| z.saturating_sub(a));
        let after = memory_now(pid, "after a burst")?;
        peak_read = peak_read.max(after.rss);
        println!(
            "SE1 burst {}: {} sign-ins in {:.2} s: {}; RSS after {:.1} MiB",
            b + 1,
            opts.burst,
            took.as_secs_f64(),
            tally.all.describe(),
            mib(after.rss)
        );
        for kind in Kind::ALL {
            println!("  {}: {}", kind.label(), tally.by_kind[kind.index()].describe());
        }
        if let Some(cpu) = cpu {
            println!(
                "  server CPU time {:.2} s of {:.2} s wall × {cores} cores ({:.0} %)",
                cpu.as_secs_f64(),
                took.as_secs_f64(),
                100.0 * cpu.as_secs_f64() / (took.as_secs_f64() * cores as f64).max(f64::EPSILON)
            );
        }
        no_retry_after += tally.no_retry_after;
        totals.merge(&tally.all);
    }
    tokio::time::sleep(IDLE_AFTER).await;
    let sampled = sampler.finish();
    let end = memory_now(pid, "at the end")?;
    let cpu_total = cpu_before.zip(cpu_time(pid)).map(|(a, z)| z.saturating_sub(a));

    println!("SE1 all bursts: {} sign-ins: {}", opts.burst * opts.bursts, totals.describe());
    println!(
        "SE1: RSS before {:.1} MiB; peak {:.1} MiB (VmHWM), peak sampled every {} ms {:.1} MiB ({} samples); at the end ({} s idle) {:.1} MiB",
        mib(before.rss),
        mib(end.hwm),
        SAMPLE_EVERY.as_millis(),
        mib(sampled.peak_rss.max(peak_read).max(end.rss)),
        sampled.samples,
        IDLE_AFTER.as_secs(),
        mib(end.rss)
    );
    let bound = cores as u64 * HASH_KIB + before.rss;
    // VmHWM and a sampled VmRSS can differ by a few pages (per-thread counters): the higher
    let peak = end.hwm.max(sampled.peak_rss);
    println!(
        "SE1: bound {cores} cores × 19 MiB + {:.1} MiB baseline = {:.1} MiB; ratio {:.2}",
        mib(before.rss),
        mib(bound),
        peak as f64 / bound as f64
    );
    println!(
        "SE1: server threads {} before, at most {} during the bursts, {} at the end",
        before.threads,
        sampled.peak_threads.max(end.threads),
        end.threads
    );
    if let Some(cpu) = cpu_total {
        println!("SE1: server CPU time over the bursts and the idle time: {:.2} s", cpu.as_secs_f64());
    }
    println!("SE1: 429 and 503 answers without a Retry-After of whole seconds: {no_retry_after} (must be 0)");
    drop(child); // kill_on_drop
    Ok(())
}
