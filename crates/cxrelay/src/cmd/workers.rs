//! `cxrelay workers [--tenant T] [--json]`: live worker processes, from heartbeats that expire a
//! lease after the last one (a killed worker drops off; a stopped one leaves at once).

use std::process::ExitCode;

use cxrelay_app::App;
use cxrelay_core::config::Settings;

use super::{age, refuse};

/// Arguments of `cxrelay workers`.
#[derive(clap::Args)]
pub struct Args {
    /// The tenant (default: target.tenant / CXRELAY_TENANT).
    #[arg(long)]
    tenant: Option<String>,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

/// Lists the live workers.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    let workers = match app.workers(args.tenant.as_deref()).await {
        Ok(w) => w,
        Err(e) => return refuse(e),
    };
    if args.json {
        println!("{}", serde_json::to_string(&workers)?);
        return Ok(ExitCode::SUCCESS);
    }
    if workers.is_empty() {
        eprintln!("no live workers");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:>8} {:<10} {:>11} {:>9} {:>8} {:>9}",
        "consumer", "host", "pid", "tenant", "concurrency", "in flight", "started", "last seen"
    );
    for w in &workers {
        println!(
            "{:<40} {:<16} {:>8} {:<10} {:>11} {:>9} {:>8} {:>9}",
            w.consumer,
            w.host,
            w.pid,
            w.tenant,
            w.concurrency,
            w.in_flight,
            age(w.started_ms),
            age(w.last_seen_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}
