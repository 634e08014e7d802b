//! The `canopy` binary: the composition root.
//!
//! `canopy serve` runs the control plane; `canopy admin ...` works on the
//! database directly; every other command is a client of the REST API.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc rather than glibc's malloc: requests allocate and free many
/// small values on several threads at once, where glibc's arenas contend
/// (B4 in BENCHMARKS.md measures the difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod checkpoints_file;
mod cli;
mod config;
mod serve;
mod telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "canopy",
    version,
    about = "Canopy: multi-cloud governance control plane and its command-line client",
    after_help = cli::EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Canopy server (REST API) on SQLite or PostgreSQL.
    Serve(Box<serve::ServeArgs>),
    /// Installation administration, run on the server's database directly.
    #[command(subcommand)]
    Admin(serve::AdminCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    // the matches too: the configuration file fills in only what neither a
    // flag nor the environment gave (their sources are in the matches)
    let matches = Cli::command().get_matches();
    let args = match Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    // TLS for every HTTPS client in the process (the CLI, platform adapters, SMTP):
    // reqwest is built without a default crypto provider
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match args.command {
        Command::Serve(a) => {
            let Some(serve_matches) = matches.subcommand_matches("serve") else { return ExitCode::FAILURE };
            return run_serve(runtime, *a, serve_matches);
        }
        other => other,
    };
    runtime.block_on(async move {
        match command {
            Command::Serve(_) => ExitCode::FAILURE,
            Command::Admin(a) => serve::admin(a).await,
            Command::Client(c) => cli::run(args.global, c).await,
        }
    })
}

/// `canopy serve`: resolve the configuration (flags, environment, file),
/// print it or install the subscriber and serve, then flush the traces.
fn run_serve(runtime: tokio::runtime::Runtime, args: serve::ServeArgs, matches: &clap::ArgMatches) -> ExitCode {
    let resolved = match config::resolve(args, matches) {
        Ok(r) => r,
        Err(e) => return report(Err(e)),
    };
    if resolved.args.print_config {
        print!("{}", resolved.to_toml());
        return ExitCode::SUCCESS;
    }
    let args = resolved.args;
    let telemetry = match telemetry::init(&args.log, args.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => return report(Err(e)),
    };
    let result = runtime.block_on(serve::serve(args));
    // the runtime's tasks end first; then what is left of the traces goes
    drop(runtime);
    telemetry.shutdown();
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
