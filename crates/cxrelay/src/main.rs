//! `cxrelay`: the one binary. Parses arguments and settings, sets up logging, then calls the
//! library crates; each subcommand lives in its own module under `cmd/`.
//!
//! This module owns what every command shares: the log format on stderr (`--log-format`), the
//! checks that refuse to start with unusable settings (exit 2), and how a command's final error
//! is shown.

mod cmd;
mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cxrelay_core::config::{AuthMode, Settings};

/// Exit code when the settings are unusable: the command refused to start and did nothing.
const EXIT_UNUSABLE: u8 = 2;

/// Durable, rate-limited delivery of record arrays to a contact-center API.
#[derive(Parser)]
#[command(name = "cxrelay", version, about)]
struct Cli {
    /// Settings file (TOML); `CXRELAY_*` and `REDIS_URL` environment variables override it.
    #[arg(long, global = true, env = "CXRELAY_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log format on stderr: `text` (coloured only on a terminal) or `json` (one object per line).
    #[arg(long, global = true, env = "CXRELAY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines (and a command's final error) are written to stderr.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
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

/// Installs the global subscriber: `RUST_LOG` filters, else `default_level`.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Escape codes are noise in a file or a log collector; NO_COLOR (no-color.org) wins.
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init();
        }
        // Flattened, so `message` and the fields sit next to `level` and `target`.
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
    }
}

/// An error and its causes on one line, each cause once: library errors often repeat their
/// source in their own text ("redis: connection refused: connection refused"), and a person
/// should read the cause once.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(text.trim()) {
            continue;
        }
        // A cause that already quotes the next ones keeps only its own words.
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Shows a command's final error: `error: …` on stderr, or an ERROR event in JSON mode so a
/// log collector gets it like every other line (unless `RUST_LOG` silenced errors).
fn show_error(format: LogFormat, message: &str) {
    if format == LogFormat::Json && tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// Checks, before a worker starts, what would fail every item it takes: the target URL and
/// the authentication settings. A worker that started anyway would burn each item's attempts
/// on the same configuration error.
fn check_worker_settings(settings: &Settings) -> Result<(), String> {
    cxrelay_cxone::TargetClient::new(cxrelay_worker::setup::client_config(settings)).map_err(|e| format!("cannot start the worker: {e}"))?;
    let t = &settings.target;
    if matches!(t.auth, AuthMode::ClientCredentialsForm | AuthMode::ClientCredentialsJson) && t.client_secret.is_empty() {
        // Not refused: a token endpoint may accept a client without a secret.
        tracing::warn!(
            "client_secret is empty: set CXRELAY_CLIENT_SECRET (or target.client_secret in the settings file) unless the token endpoint expects none"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    let default_level = if matches!(cli.command, Command::Worker(_) | Command::Sim(_)) { "info" } else { "warn" };
    init_logging(format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sim(args) => cxrelay_sim::run(args).await.map(|_| ExitCode::SUCCESS).map_err(anyhow::Error::from),
            command => {
                let settings = match settings::load(cli.config.as_deref()) {
                    Ok(s) => s,
                    Err(e) => {
                        show_error(format, &describe(&e));
                        return Ok(ExitCode::from(EXIT_UNUSABLE));
                    }
                };
                match command {
                    Command::Enqueue(args) => cmd::enqueue::run(&settings, args).await,
                    Command::Worker(args) => {
                        if let Err(message) = check_worker_settings(&settings) {
                            show_error(format, &message);
                            return Ok(ExitCode::from(EXIT_UNUSABLE));
                        }
                        cmd::worker::run(settings, args).await
                    }
                    Command::Report(args) => cmd::report::run(&settings, args).await,
                    Command::Sim(_) => unreachable!("handled above"),
                }
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            show_error(format, &describe(&e));
            ExitCode::from(1)
        }
    }
}
