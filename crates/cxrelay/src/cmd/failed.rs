//! `cxrelay failed RUN [--status S] [--reason TEXT] [--since T] [--limit N] [--json|--csv]
//! [--summary]`: a run's failed items in index order (index, last status, reason, attempts,
//! first and last attempt), or grouped by status and reason with `--summary`. Output streams a
//! page at a time, so 100,000 failed items are listed with flat memory; CSV cells are made safe
//! to open in a spreadsheet.

use std::io::Write;
use std::process::ExitCode;

use cxrelay_app::{App, AppError, FailedFilter, FailedRow, StatusFilter};
use cxrelay_core::config::Settings;
use cxrelay_core::oncall::{parse_since, spreadsheet_safe};

use super::refuse;

/// Arguments of `cxrelay failed`.
#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    /// Only this failure class (4xx, 5xx, 429, transport, auth, permission, poison, local) or
    /// HTTP status code (e.g. 503).
    #[arg(long)]
    status: Option<String>,
    /// Only failures whose reason contains this text (case-insensitive).
    #[arg(long)]
    reason: Option<String>,
    /// Only failures at or after this time: RFC 3339, or a duration back from now (30m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// At most N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Counts grouped by status and reason instead of the items.
    #[arg(long)]
    summary: bool,
    /// A JSON array of `{index, status, reason, attempts, last_attempt_at, …}`.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header row.
    #[arg(long)]
    csv: bool,
}

/// Builds the failed-item filter from the flags as typed (an unusable one names itself).
pub fn filter(status: Option<&str>, reason: Option<&str>, since: Option<&str>) -> Result<FailedFilter, AppError> {
    let arg = |e: cxrelay_core::oncall::ArgError| AppError::InvalidArgument { what: e.what, value: e.value, reason: e.expected };
    Ok(FailedFilter {
        status: status.map(StatusFilter::parse).transpose().map_err(arg)?,
        reason: reason.map(str::to_owned).filter(|r| !r.is_empty()),
        since_ms: since.map(|s| parse_since(s, cxrelay_core::now_ms())).transpose().map_err(arg)?,
    })
}

/// Lists the failed items.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let filter = match filter(args.status.as_deref(), args.reason.as_deref(), args.since.as_deref()) {
        Ok(f) => f,
        Err(e) => return refuse(e),
    };
    let app = App::new(settings);
    // Not a StdoutLock: this future is spawned, and a lock cannot be held across an await.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    if args.summary {
        let groups = match app.failed_summary(&args.run, filter).await {
            Ok(g) => g,
            Err(e) => return refuse(e),
        };
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&groups)?)?;
        } else if args.csv {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["status", "reason", "count"])?;
            for g in &groups {
                w.write_record([spreadsheet_safe(&g.status).as_ref(), spreadsheet_safe(&g.reason).as_ref(), &g.count.to_string()])?;
            }
            w.flush()?;
        } else {
            for g in &groups {
                writeln!(out, "{:>8}  {:<10} {}", g.count, g.status, g.reason)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut pages = match app.failed(&args.run, filter, args.limit, None).await {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let mut csv_out = args.csv.then(|| csv::Writer::from_writer(std::io::stdout()));
    if let Some(w) = &mut csv_out {
        w.write_record(["index", "status", "class", "reason", "attempts", "first_attempt_at", "last_attempt_at"])?;
    } else if args.json {
        write!(out, "[")?;
    }
    let mut first = true;
    while let Some(rows) = pages.next_page().await? {
        for row in &rows {
            match &mut csv_out {
                Some(w) => csv_row(w, row)?,
                None if args.json => {
                    write!(out, "{}{}", if first { "" } else { "," }, serde_json::to_string(row)?)?;
                }
                None => writeln!(
                    out,
                    "{:>8}  {:<10} attempts {:<3} {}  {}",
                    row.index,
                    row.status,
                    row.attempts,
                    row.last_attempt_at,
                    row.reason.lines().next().unwrap_or("")
                )?,
            }
            first = false;
        }
        // A page at a time: what was read is written out before the next page is read.
        if let Some(w) = &mut csv_out {
            w.flush()?;
        }
        out.flush()?;
    }
    if args.json {
        writeln!(out, "]")?;
    } else if first && !args.csv {
        eprintln!("no failed items match");
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn csv_row(w: &mut csv::Writer<std::io::Stdout>, row: &FailedRow) -> anyhow::Result<()> {
    w.write_record([
        row.index.to_string().as_str(),
        spreadsheet_safe(&row.status).as_ref(),
        spreadsheet_safe(&row.class).as_ref(),
        spreadsheet_safe(&row.reason).as_ref(),
        row.attempts.to_string().as_str(),
        row.first_attempt_at.as_deref().unwrap_or(""),
        &row.last_attempt_at,
    ])?;
    Ok(())
}
