//! `cxrelay worker`: deliver items until SIGTERM/SIGINT, then finish in-flight items and exit 0.

use std::process::ExitCode;

use cxrelay_core::config::Settings;

/// Arguments of `cxrelay worker`.
#[derive(clap::Args)]
pub struct Args {
    /// Items in flight in this process (overrides worker.concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Serve /metrics, /healthz and /readyz on this address (overrides worker.metrics_addr).
    #[arg(long)]
    metrics_addr: Option<String>,
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Runs the worker.
pub async fn run(mut settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(n) = args.concurrency {
        settings.worker.concurrency = n;
        settings.validate()?;
    }
    if let Some(addr) = args.metrics_addr {
        settings.worker.metrics_addr = Some(addr);
    }
    if let Some(addr) = settings.worker.metrics_addr.clone() {
        let listener = cxrelay_http::bind_probes(&addr).await.map_err(|e| super::Refused(format!("--metrics-addr: {e}")))?;
        let handle = cxrelay_http::install_metrics();
        let probe_settings = settings.clone();
        tokio::spawn(async move {
            if let Err(e) = cxrelay_http::serve_probes(&probe_settings, listener, handle).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        });
    }
    cxrelay_worker::run_worker(&settings, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
