//! `cxrelay item RUN INDEX [--json]`: one item's state, payload (kept for failed items), last
//! failure and whole attempt history.

use std::process::ExitCode;

use cxrelay_app::App;
use cxrelay_core::config::Settings;
use cxrelay_core::oncall::rfc3339;

use super::refuse;

/// Arguments of `cxrelay item`.
#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    /// The item's index in the run's input.
    index: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Shows the item.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    let item = match app.item(&args.run, args.index).await {
        Ok(i) => i,
        Err(e) => return refuse(e),
    };
    if args.json {
        println!("{}", serde_json::to_string(&item)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {}  item {}  {}", item.run_id, item.index, serde_json::to_value(item.state)?.as_str().unwrap_or(""));
    if let Some(f) = &item.failure {
        println!("  failed: {} after {} attempt(s) at {}", f.class, f.attempts, rfc3339(f.at_ms));
        println!("  reason: {}", f.reason);
    }
    if let Some(r) = &item.invalid_reason {
        println!("  rejected by validation: {r}");
    }
    if let Some(p) = &item.payload {
        println!("  payload: {}", serde_json::to_string(p)?);
    }
    if item.history.is_empty() {
        println!("  history: none kept (an item that succeeded at once keeps none)");
    } else {
        println!("  history ({} attempt record(s), oldest first):", item.history.len());
        for h in &item.history {
            let status = h.status.map(|s| s.to_string()).or_else(|| h.class.clone()).unwrap_or_else(|| "-".into());
            println!(
                "    {}  attempt {:<3} {:<9} {:<10} {:>8.1} ms  {}  {}",
                rfc3339(h.at_ms),
                h.attempt,
                h.outcome,
                status,
                h.latency_us as f64 / 1000.0,
                h.worker,
                h.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
