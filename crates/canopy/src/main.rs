//! The `canopy` binary: the composition root.
//!
//! `canopy serve` runs the control plane; `canopy admin ...` works on the
//! database directly; every other command is a client of the REST API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: requests allocate and free many
/// small values on several threads at once, where glibc's arenas contend
/// (B4 in BENCHMARKS.md measures the difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod checkpoints_file;
mod cli;
mod serve;

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
    Serve(serve::ServeArgs),
    /// Installation administration, run on the server's database directly.
    #[command(subcommand)]
    Admin(serve::AdminCommand),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let args = Cli::parse();
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
    runtime.block_on(async move {
        match args.command {
            Command::Serve(a) => report(serve::serve(a).await),
            Command::Admin(a) => serve::admin(a).await,
            Command::Client(c) => cli::run(args.global, c).await,
        }
    })
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
