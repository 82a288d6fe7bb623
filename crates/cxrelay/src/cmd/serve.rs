//! `cxrelay serve [--addr HOST:PORT]`: the HTTP API until SIGTERM/SIGINT.

use std::process::ExitCode;

use cxrelay_core::config::Settings;

/// Arguments of `cxrelay serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (overrides serve.addr / CXRELAY_SERVE_ADDR).
    #[arg(long)]
    addr: Option<String>,
}

/// Serves the API.
pub async fn run(mut settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.addr {
        settings.serve.addr = addr;
    }
    match cxrelay_http::serve(&settings, super::worker::shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ cxrelay_http::ServeError::Tokens(_)) => Err(super::Refused(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}
