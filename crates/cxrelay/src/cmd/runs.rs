//! `cxrelay runs [--status S] [--tenant T] [--json]`: a tenant's runs, newest first, with
//! progress, failed count, throughput and age; `--json` prints an array of report objects.

use std::process::ExitCode;

use cxrelay_app::{App, AppError, RunsFilter};
use cxrelay_core::config::Settings;
use cxrelay_core::report::RunStatus;

use super::{age, refuse};

/// Arguments of `cxrelay runs`.
#[derive(clap::Args)]
pub struct Args {
    /// Only runs with this status: loading, active, paused, finished or cancelled.
    #[arg(long)]
    status: Option<String>,
    /// The tenant (default: target.tenant / CXRELAY_TENANT).
    #[arg(long)]
    tenant: Option<String>,
    /// Print a JSON array of report objects.
    #[arg(long)]
    json: bool,
}

/// Lists the runs.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let status = match args.status.as_deref().map(|s| (s, RunStatus::parse(s.trim()))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((typed, None)) => {
            return refuse(AppError::InvalidArgument {
                what: "--status",
                value: typed.to_owned(),
                reason: "expected loading, active, paused, finished or cancelled".into(),
            })
        }
    };
    let app = App::new(settings);
    let runs = match app.runs(&RunsFilter { status, tenant: args.tenant }).await {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    if args.json {
        println!("{}", serde_json::to_string(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<28} {:<10} {:>16} {:>8} {:>10} {:>6}  action", "run", "status", "done/total", "failed", "items/s", "age");
    for r in &runs {
        let done = r.succeeded + r.failed + r.validation_failures;
        let pct = if r.total == 0 { 100.0 } else { done as f64 * 100.0 / r.total as f64 };
        println!(
            "{:<28} {:<10} {:>16} {:>8} {:>10.1} {:>6}  {}",
            r.run_id,
            r.status.as_str(),
            format!("{done}/{} {pct:.0}%", r.total),
            r.failed,
            r.throughput_per_s,
            age(r.created_ms),
            r.action
        );
        if let Some(w) = &r.warning {
            println!("  ! {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
