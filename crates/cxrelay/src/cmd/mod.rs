//! One module per subcommand, and how an [`AppError`] becomes an exit code.

pub mod audit;
pub mod control;
pub mod enqueue;
pub mod export;
pub mod failed;
pub mod item;
pub mod replay;
pub mod report;
pub mod runs;
pub mod serve;
pub mod webhooks;
pub mod worker;
pub mod workers;

use std::process::ExitCode;

use cxrelay_app::AppError;

/// Exit code of a request that cannot be carried out as given (unknown run, bad argument, an
/// action the run's state does not allow): nothing was changed.
pub const EXIT_UNUSABLE: u8 = 2;

/// A request that cannot be carried out as given; `main` shows the message (as text or a JSON
/// log line) and exits [`EXIT_UNUSABLE`].
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Turns an unusable request into [`Refused`] (exit 2, with what a person must change); any other
/// error (Redis) stays as it is (exit 1).
pub fn refuse(e: AppError) -> anyhow::Result<ExitCode> {
    Err(match e {
        AppError::RunNotFound(run) => Refused(format!("run {run} not found; `cxrelay runs` lists runs")).into(),
        e @ (AppError::InvalidArgument { .. } | AppError::NotAllowed(_) | AppError::InvalidExport(_)) => {
            Refused(format!("{e}; nothing was changed")).into()
        }
        e => e.into(),
    })
}

/// Who is acting: `--by`, else `CXRELAY_OPERATOR` (read by clap), else the OS user.
pub fn operator(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// `ms` since the epoch as an age: `42s`, `5m`, `3h`, `2d`.
pub fn age(ms: u64) -> String {
    cxrelay_core::oncall::age(ms, cxrelay_core::now_ms())
}
