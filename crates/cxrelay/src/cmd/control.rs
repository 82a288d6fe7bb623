//! `cxrelay pause|resume|cancel RUN [--reason WHY] [--by WHO]` and `cxrelay purge RUN --yes`.
//!
//! Pause: nothing new is sent, items in flight finish. Resume: sending starts again. Cancel:
//! nothing more is sent, items in flight finish, pending items are reported as cancelled (never
//! as failed). Purge: a finished or cancelled run's data is deleted at once.

use std::process::ExitCode;

use cxrelay_app::{App, AppError, Control};
use cxrelay_core::config::Settings;

use super::{operator, refuse};

/// Arguments of `cxrelay pause`, `resume` and `cancel`.
#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    /// Why (recorded in the audit stream and shown by `report`).
    #[arg(long)]
    reason: Option<String>,
    /// Who (default: CXRELAY_OPERATOR, else the OS user).
    #[arg(long, env = "CXRELAY_OPERATOR")]
    by: Option<String>,
}

/// Arguments of `cxrelay purge`.
#[derive(clap::Args)]
pub struct PurgeArgs {
    /// The run id.
    run: String,
    /// Confirm: the run's data is deleted at once and cannot be recovered.
    #[arg(long)]
    yes: bool,
}

/// Pauses, resumes or cancels the run.
pub async fn run(settings: &Settings, action: Control, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    let word = action.past_tense();
    let reason = args.reason.unwrap_or_else(|| format!("{word} by an operator"));
    match app.control(&args.run, action, &operator(args.by), &reason).await {
        Ok((from, to)) => {
            println!("run {} {word} ({from} → {to})", args.run);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refuse(e),
    }
}

/// Purges the run.
pub async fn purge(settings: &Settings, args: PurgeArgs) -> anyhow::Result<ExitCode> {
    if !args.yes {
        return refuse(AppError::NotAllowed(format!("purging deletes run {} at once; add --yes to confirm", args.run)));
    }
    match App::new(settings).purge(&args.run).await {
        Ok(()) => {
            println!("run {} purged", args.run);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refuse(e),
    }
}
