//! `cxrelay replay RUN (--index 3,7,10-20 | --status S | --failed-reason TEXT | --all-failed)
//! [--since T] [--limit N] [--dry-run] [--new-idempotency-key] --reason WHY [--by WHO] [--json]`:
//! re-enqueues exactly the selected failed items (in batches, one atomic script each); succeeded,
//! pending and in-flight items are refused with why. `--reason` is why you replay (recorded
//! in the audit stream with who and when); the filter on failure reasons is `--failed-reason`.
//!
//! By default a replayed item keeps its Idempotency-Key, so a target that did apply it (and
//! answered an error anyway) does not apply it twice; `--new-idempotency-key` gives it a new one,
//! for targets that cache failed answers under the key.

use std::process::ExitCode;

use cxrelay_app::{App, AppError, Replay, Selection};
use cxrelay_core::config::Settings;
use cxrelay_core::oncall::parse_indexes;

use super::{operator, refuse};

/// Arguments of `cxrelay replay`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("selection").required(true).multiple(true).args(["index", "status", "failed_reason", "all_failed"])))]
pub struct Args {
    /// The run id.
    run: String,
    /// These indexes: `3,7,10-20`.
    #[arg(long, conflicts_with_all = ["status", "failed_reason", "all_failed", "since"])]
    index: Option<String>,
    /// Failed items of this class (4xx, 5xx, 429, transport, auth, permission, poison, local)
    /// or HTTP status code.
    #[arg(long)]
    status: Option<String>,
    /// Failed items whose reason contains this text (case-insensitive).
    #[arg(long)]
    failed_reason: Option<String>,
    /// Every failed item.
    #[arg(long, conflicts_with_all = ["status", "failed_reason"])]
    all_failed: bool,
    /// Only items that failed at or after this time (RFC 3339, or 30m, 2h, 7d back from now).
    #[arg(long)]
    since: Option<String>,
    /// At most N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Change nothing; print what would be replayed and refused.
    #[arg(long)]
    dry_run: bool,
    /// Give the replayed items a new Idempotency-Key (for targets that cache failed answers).
    #[arg(long)]
    new_idempotency_key: bool,
    /// Why you replay (required; recorded).
    #[arg(long, required = true)]
    reason: String,
    /// Who replays (default: CXRELAY_OPERATOR, else the OS user).
    #[arg(long, env = "CXRELAY_OPERATOR")]
    by: Option<String>,
    /// Print `{"replayed": [indexes], "refused": [{"index", "why"}], "dry_run"}`.
    #[arg(long)]
    json: bool,
}

/// Replays the selection.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let selection = match &args.index {
        Some(list) => match parse_indexes(list) {
            Ok(ix) => Selection::Indexes(ix),
            Err(e) => return refuse(AppError::InvalidArgument { what: e.what, value: e.value, reason: e.expected }),
        },
        None => match super::failed::filter(args.status.as_deref(), args.failed_reason.as_deref(), args.since.as_deref()) {
            Ok(f) => Selection::Failed(f),
            Err(e) => return refuse(e),
        },
    };
    if args.limit == Some(0) {
        return refuse(AppError::InvalidArgument { what: "--limit", value: "0".into(), reason: "expected at least 1".into() });
    }
    let app = App::new(settings);
    let replay = Replay {
        selection,
        limit: args.limit,
        by: operator(args.by),
        reason: args.reason,
        new_idempotency_key: args.new_idempotency_key,
        dry_run: args.dry_run,
    };
    let outcome = match app.replay(&args.run, replay).await {
        Ok(o) => o,
        Err(e) => return refuse(e),
    };
    if args.json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        let verb = if outcome.dry_run { "would replay" } else { "replayed" };
        println!("{verb} {} item(s){}", outcome.replayed.len(), if outcome.dry_run { " (dry run: nothing changed)" } else { "" });
        if !outcome.replayed.is_empty() && outcome.replayed.len() <= 50 {
            println!("  {}", outcome.replayed.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        }
        if !outcome.refused.is_empty() {
            println!("refused {} item(s):", outcome.refused.len());
            for r in outcome.refused.iter().take(50) {
                println!("  {:>8}  {}", r.index, r.why);
            }
            if outcome.refused.len() > 50 {
                println!("  … and {} more (--json lists them all)", outcome.refused.len() - 50);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
