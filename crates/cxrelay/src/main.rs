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

/// mimalloc instead of glibc malloc: the worker allocates small, short-lived buffers per item
/// on several threads, where glibc's arena locking and consolidation cost ~15% of its CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// List a tenant's runs, newest first.
    Runs(cmd::runs::Args),
    /// Queue a CSV export execution (validated by the seed's rules; submitted by workers).
    Export(cmd::export::Args),
    /// List the tenant's export executions with state, rows and latency.
    Exports(cmd::export::ListArgs),
    /// List live worker processes.
    Workers(cmd::workers::Args),
    /// List a run's failed items (or `--summary`: counts by status and reason).
    Failed(cmd::failed::Args),
    /// Show one item: state, payload, last failure and attempt history.
    Item(cmd::item::Args),
    /// Re-enqueue exactly the selected failed items.
    Replay(cmd::replay::Args),
    /// Stop sending a run's items (in-flight ones finish).
    Pause(cmd::control::Args),
    /// Send a paused run's items again.
    Resume(cmd::control::Args),
    /// Stop a run for good: pending items are cancelled, never failed.
    Cancel(cmd::control::Args),
    /// Delete a finished or cancelled run's data now (`--yes`).
    Purge(cmd::control::PurgeArgs),
    /// Show a run's audit trail.
    Audit(cmd::audit::Args),
    /// Monitoring webhooks: delivery status, or send a test event.
    Webhooks(cmd::webhooks::Args),
    /// Serve the HTTP API until SIGTERM/SIGINT.
    Serve(cmd::serve::Args),
    /// Serve the bundled CXone simulator on 127.0.0.1.
    Sim(cxrelay_sim::SimArgs),
}

/// Where the per-attempt audit events go (`worker.audit_log`).
fn audit_writer(target: &str) -> std::io::Result<tracing_subscriber::fmt::writer::BoxMakeWriter> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    if target == "stdout" {
        return Ok(BoxMakeWriter::new(std::io::stdout));
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(target)?;
    // A line at a time: what a killed worker had written is whole lines, all on disk.
    Ok(BoxMakeWriter::new(std::sync::Mutex::new(std::io::LineWriter::new(file))))
}

/// Installs the global subscriber: `RUST_LOG` filters, else `default_level`; the audit events
/// (target [`AUDIT_TARGET`](cxrelay_worker::handler::AUDIT_TARGET)) go only to `audit`, as JSON
/// lines, and never to stderr.
fn init_logging(format: LogFormat, default_level: &str, audit: Option<tracing_subscriber::fmt::writer::BoxMakeWriter>) {
    use tracing_subscriber::filter::{filter_fn, FilterExt, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    const AUDIT: &str = cxrelay_worker::handler::AUDIT_TARGET;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let filter = filter.and(filter_fn(|m| m.target() != AUDIT));
    let logs = match format {
        LogFormat::Text => {
            // Escape codes are noise in a file or a log collector; NO_COLOR (no-color.org) wins.
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour).with_filter(filter).boxed()
        }
        // Flattened, so `message` and the fields sit next to `level` and `target`.
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().flatten_event(true).with_ansi(false).with_writer(std::io::stderr).with_filter(filter).boxed()
        }
    };
    let audit = audit.map(|writer| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .with_writer(writer)
            .with_filter(Targets::new().with_target(AUDIT, tracing::Level::INFO))
            .boxed()
    });
    tracing_subscriber::registry().with(logs).with(audit).init();
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
    let t = cxrelay_core::profile::resolve(settings).map_err(|e| format!("cannot start the worker: {e}"))?;
    cxrelay_cxone::TargetClient::new(cxrelay_worker::setup::client_config(&t)).map_err(|e| format!("cannot start the worker: {e}"))?;
    if matches!(t.auth, AuthMode::ClientCredentialsForm | AuthMode::ClientCredentialsJson) && t.client_secret.is_empty() {
        // Not refused: a token endpoint may accept a client without a secret.
        tracing::warn!(
            "client_secret is empty: set CXRELAY_CLIENT_SECRET (or target.client_secret in the settings file) unless the token endpoint expects none"
        );
    }
    Ok(())
}

/// The async runtime a command runs on. One thread unless a worker is configured for more: the
/// CLI's work is one pipeline (enqueue, report) or one worker's items, and a single-threaded
/// runtime spends no CPU handing wake-ups between threads (a third less per item in a worker,
/// see BENCHMARKS.md). The simulator serves many connections and takes every core.
fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("tokio runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    let default_level = if matches!(cli.command, Command::Worker(_) | Command::Sim(_) | Command::Serve(_)) { "info" } else { "warn" };
    let settings = match &cli.command {
        Command::Sim(_) => None,
        _ => Some(settings::load(cli.config.as_deref())),
    };
    let audit_log = settings
        .as_ref()
        .and_then(|s| s.as_ref().ok())
        .and_then(|s| s.worker.audit_log.clone())
        .filter(|_| matches!(cli.command, Command::Worker(_)));
    let audit = match audit_log.as_deref().map(audit_writer) {
        Some(Err(e)) => {
            init_logging(format, default_level, None);
            show_error(format, &format!("cannot open the audit log {}: {e}", audit_log.unwrap_or_default()));
            return ExitCode::from(cmd::EXIT_UNUSABLE);
        }
        Some(Ok(writer)) => Some(writer),
        None => None,
    };
    init_logging(format, default_level, audit);
    let settings = match cli.command {
        Command::Sim(args) => {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            return match runtime(cores.max(2)).block_on(cxrelay_sim::run(args)) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    show_error(format, &describe(&anyhow::Error::from(e)));
                    ExitCode::from(1)
                }
            };
        }
        _ => match settings.expect("loaded above for every command but sim") {
            Ok(s) => s,
            Err(e) => {
                show_error(format, &describe(&e));
                return ExitCode::from(cmd::EXIT_UNUSABLE);
            }
        },
    };
    let threads = if matches!(cli.command, Command::Worker(_)) { settings.worker.threads } else { 1 };
    // Spawned rather than run inside `block_on`: with several threads, `block_on`'s future would
    // sit on the main thread, outside the runtime's workers.
    let result = runtime(threads).block_on(async move {
        let command = tokio::spawn(async move {
            match cli.command {
                Command::Enqueue(args) => cmd::enqueue::run(&settings, args).await,
                Command::Worker(args) => {
                    if let Err(message) = check_worker_settings(&settings) {
                        show_error(format, &message);
                        return Ok(ExitCode::from(cmd::EXIT_UNUSABLE));
                    }
                    cmd::worker::run(settings, args).await
                }
                Command::Report(args) => cmd::report::run(&settings, args).await,
                Command::Runs(args) => cmd::runs::run(&settings, args).await,
                Command::Export(args) => cmd::export::run(&settings, args).await,
                Command::Exports(args) => cmd::export::list(&settings, args).await,
                Command::Workers(args) => cmd::workers::run(&settings, args).await,
                Command::Failed(args) => cmd::failed::run(&settings, args).await,
                Command::Item(args) => cmd::item::run(&settings, args).await,
                Command::Replay(args) => cmd::replay::run(&settings, args).await,
                Command::Pause(args) => cmd::control::run(&settings, cxrelay_app::Control::Pause, args).await,
                Command::Resume(args) => cmd::control::run(&settings, cxrelay_app::Control::Resume, args).await,
                Command::Cancel(args) => cmd::control::run(&settings, cxrelay_app::Control::Cancel, args).await,
                Command::Purge(args) => cmd::control::purge(&settings, args).await,
                Command::Audit(args) => cmd::audit::run(&settings, args).await,
                Command::Webhooks(args) => cmd::webhooks::run(&settings, args).await,
                Command::Serve(args) => cmd::serve::run(settings, args).await,
                Command::Sim(_) => unreachable!("handled above"),
            }
        });
        command.await.unwrap_or_else(|e| Err(anyhow::anyhow!("the command panicked: {e}")))
    });
    match result {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<cmd::Refused>() {
            Some(refused) => {
                show_error(format, &refused.0);
                ExitCode::from(cmd::EXIT_UNUSABLE)
            }
            None => {
                show_error(format, &describe(&e));
                ExitCode::from(1)
            }
        },
    }
}
