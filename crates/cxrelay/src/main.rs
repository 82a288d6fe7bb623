//! `cxrelay`: the one binary. Parses arguments and settings, then calls the library crates;
//! each subcommand lives in its own module under `cmd/`.

mod cmd;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Durable, rate-limited delivery of record arrays to a contact-center API.
#[derive(Parser)]
#[command(name = "cxrelay", version, about)]
struct Cli {
    /// Settings file (TOML); `CXRELAY_*` and `REDIS_URL` environment variables override it.
    #[arg(long, global = true, env = "CXRELAY_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Split an input array into per-item jobs of a new (or resumed) run.
    Enqueue(cmd::enqueue::Args),
    /// Deliver items until SIGTERM/SIGINT.
    Worker(cmd::worker::Args),
    /// Show a run's progress and results.
    Report(cmd::report::Args),
    /// Serve the bundled CXone simulator on 127.0.0.1.
    Sim(cxrelay_sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Worker(_) | Command::Sim(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sim(args) => cxrelay_sim::run(args).await.map(|_| ExitCode::SUCCESS).map_err(anyhow::Error::from),
            command => {
                let settings = settings::load(cli.config.as_deref())?;
                match command {
                    Command::Enqueue(args) => cmd::enqueue::run(&settings, args).await,
                    Command::Worker(args) => cmd::worker::run(settings, args).await,
                    Command::Report(args) => cmd::report::run(&settings, args).await,
                    Command::Sim(_) => unreachable!("handled above"),
                }
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
