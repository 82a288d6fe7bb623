//! `cxrelay enqueue --action ID [--run-id ID] [--tenant T] [--idempotency-field NAME]
//! [--max-items N] [--format json|ndjson|csv] [--delimiter ,|;|tab|pipe] FILE|-`
//!
//! Exit codes: 0 all items accepted; 3 the run was created but some items were rejected by
//! validation (listed on stderr, recorded in the run); 2 the input or an argument is unusable
//! (malformed, empty or unreadable input; a bad run id, tenant or field name) and nothing was
//! enqueued; 1 any other error.

use std::io::IsTerminal;
use std::process::ExitCode;

use cxrelay_app::{App, AppError, NewRun};
use cxrelay_core::config::Settings;
use cxrelay_core::input::InputFormat;
use indicatif::{ProgressBar, ProgressStyle};

/// Rejections printed on stderr (all are recorded in the run).
const PRINTED_REJECTIONS: usize = 20;

/// Arguments of `cxrelay enqueue`.
#[derive(clap::Args)]
pub struct Args {
    /// Target action id (the `{actionId}` of the execute endpoint).
    #[arg(long)]
    action: String,
    /// Run id; re-using one resumes that run without enqueuing any item twice.
    #[arg(long)]
    run_id: Option<String>,
    /// The tenant the run belongs to (default: target.tenant / CXRELAY_TENANT); only workers of
    /// that tenant deliver it.
    #[arg(long)]
    tenant: Option<String>,
    /// Key each item's Idempotency-Key on this field's value (`ACTION:VALUE`) instead of the
    /// per-run key, so the target de-duplicates the same record across runs; items without the
    /// field are rejected.
    #[arg(long)]
    idempotency_field: Option<String>,
    /// Enqueue only items with index below N (the seed's max-iterations break).
    #[arg(long)]
    max_items: Option<u64>,
    /// Failure-rate guard: the run pauses itself when more than this percent of its last
    /// `--window` finished items failed (e.g. `20%`; default: queue.pause_on_failure_rate).
    #[arg(long)]
    pause_on_failure_rate: Option<String>,
    /// Finished items the failure-rate guard looks at (default: queue.failure_window, 200).
    #[arg(long)]
    window: Option<u32>,
    /// Input format; default: ndjson for *.ndjson/*.jsonl, csv for *.csv, else json.
    #[arg(long, value_parser = ["json", "ndjson", "jsonl", "csv"])]
    format: Option<String>,
    /// CSV field delimiter: `,` `;` `tab` or `pipe` (default `,`).
    #[arg(long)]
    delimiter: Option<String>,
    /// Print `{"run_id", "accepted", "rejected", …}` as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Input file, or `-` for standard input.
    input: String,
}

/// The command-line flag an [`AppError::InvalidArgument`] came from.
fn flag(what: &str) -> &str {
    match what {
        "run id" => "--run-id",
        "tenant" => "--tenant",
        "idempotency field" => "--idempotency-field",
        "action" => "--action",
        "failure rate" => "--pause-on-failure-rate",
        "failure window" => "--window",
        other => other,
    }
}

/// Enqueues the input and prints the run id (first) and a summary.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    let mut format = match args.format.as_deref() {
        Some(f) => InputFormat::parse(f).expect("clap checked the value"),
        None => InputFormat::from_path(&args.input),
    };
    if let Some(d) = &args.delimiter {
        match (InputFormat::csv_delimiter(d), &mut format) {
            (Some(delim), InputFormat::Csv { delimiter }) => *delimiter = delim,
            (None, _) => {
                eprintln!("error: invalid --delimiter {d:?}: expected , ; tab or pipe; nothing was enqueued");
                return Ok(ExitCode::from(2));
            }
            (Some(_), _) => {
                eprintln!("error: --delimiter applies to CSV input (--format csv); nothing was enqueued");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let source = if args.input == "-" { "stdin".to_owned() } else { args.input.clone() };
    let new = NewRun {
        run_id: args.run_id.clone(),
        action: args.action.clone(),
        tenant: args.tenant.clone(),
        idempotency_field: args.idempotency_field.clone(),
        source,
        format,
        max_items: args.max_items,
        pause_on_failure_rate: args.pause_on_failure_rate.clone(),
        failure_window: args.window,
    };
    // Arguments are checked before anything else, so a bad one is exit 2 with nothing enqueued.
    let run = match app.check(new) {
        Ok(run) => run,
        Err(AppError::InvalidArgument { what, value, reason }) => {
            eprintln!("error: invalid {} {value:?}: {reason}; nothing was enqueued", flag(what));
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let reader: Box<dyn std::io::Read + Send> = if args.input == "-" {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}; nothing was enqueued", args.input);
                return Ok(ExitCode::from(2));
            }
        }
    };
    // The run id goes out first, so a producer that dies or is killed mid-load has said which
    // run to resume (`--run-id`) or to look at; on stdout alone unless stdout is JSON.
    if args.json {
        eprintln!("run {}", run.run_id());
    } else {
        println!("{}", run.run_id());
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
    let bar = (std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {pos} items enqueued ({per_sec})").expect("valid template"));
        bar
    });
    let result = app
        .enqueue(run, reader, |n| {
            if let Some(bar) = &bar {
                bar.set_position(n);
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(s) => s,
        Err(e @ (AppError::Input(_) | AppError::Empty)) => {
            eprintln!("error: {}: {e}", args.input);
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    for r in summary.rejections.iter().take(PRINTED_REJECTIONS) {
        eprintln!("rejected: {}", r.reason);
    }
    if summary.rejected as usize > PRINTED_REJECTIONS {
        eprintln!("… and {} more rejected items (see `cxrelay report {}`)", summary.rejected as usize - PRINTED_REJECTIONS, summary.run_id);
    }
    if summary.beyond_max > 0 {
        eprintln!("max-items reached: {} items past index {} were not enqueued", summary.beyond_max, args.max_items.unwrap_or(0));
    }
    if summary.already_enqueued > 0 {
        eprintln!("{} items were already enqueued in run {} and were skipped", summary.already_enqueued, summary.run_id);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!("run {}: {} accepted, {} rejected, status {}", summary.run_id, summary.accepted, summary.rejected, summary.status);
    }
    Ok(if summary.rejected > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}
