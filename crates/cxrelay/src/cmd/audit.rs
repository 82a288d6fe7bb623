//! `cxrelay audit RUN [--index N] [--follow] [--json]`: the run's audit stream — operator actions
//! (replay, pause, resume, cancel), state changes and every attempt that did not succeed —
//! oldest first; `--follow` keeps printing new events until interrupted.

use std::process::ExitCode;
use std::time::Duration;

use cxrelay_app::{App, AuditEvent};
use cxrelay_core::config::Settings;
use cxrelay_core::oncall::rfc3339;

use super::refuse;

/// Events read per page.
const PAGE: usize = 1000;

/// Arguments of `cxrelay audit`.
#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    /// Only events about this item.
    #[arg(long)]
    index: Option<u64>,
    /// Keep printing new events until interrupted.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Prints the audit trail.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    let mut after = "0".to_owned();
    loop {
        let events = match app.audit(&args.run, &after, PAGE).await {
            Ok(e) => e,
            Err(e) => return refuse(e),
        };
        if let Some(last) = events.last() {
            after = last.id.clone();
        }
        for e in events.iter().filter(|e| args.index.is_none() || e.index() == args.index) {
            if args.json {
                println!("{}", serde_json::to_string(e)?);
            } else {
                println!("{}", text(e));
            }
        }
        if events.len() < PAGE {
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn text(e: &AuditEvent) -> String {
    let field = |k: &str| e.fields.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let detail = match e.kind.as_str() {
        "attempt" => {
            let r = e.fields.get("record").cloned().unwrap_or_default();
            let get = |k: &str| r.get(k).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).unwrap_or_default();
            format!("item {} attempt {} {} {} {}", field("index"), get("attempt"), get("outcome"), get("status"), get("error"))
        }
        "replay" => format!("{} item(s) ({}) by {}: {}", field("count"), field("selection"), field("by"), field("reason")),
        "run.finished" => format!("succeeded {} failed {}", field("succeeded"), field("failed")),
        _ => format!("by {}: {}", field("by"), field("reason")),
    };
    format!("{}  {:<14} {}", rfc3339(e.at_ms), e.kind, detail)
}
