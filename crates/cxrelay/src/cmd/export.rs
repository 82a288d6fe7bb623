//! `cxrelay export --data-action ID --dataset ID [--delimiter ,|pipe|;|tab] [--quote C]
//! [--escape C] [--max-rows N] [--column-alignment] [--sanitize] [--callback-url URL] [--json]`:
//! validates a CSV export execution by the seed's rules and queues its submission; and
//! `cxrelay exports [--limit N] [--json]`: the tenant's executions with state, rows and latency.

use std::process::ExitCode;

use cxrelay_app::{App, ExportRequest, ExportRow};
use cxrelay_core::config::Settings;

use super::{age, refuse};

/// Arguments of `cxrelay export`.
#[derive(clap::Args)]
pub struct Args {
    /// The data action that runs the export.
    #[arg(long)]
    data_action: String,
    /// The dataset to export.
    #[arg(long)]
    dataset: String,
    /// Field delimiter: `,` `|` `;` or tab (also `comma`, `pipe`, `semicolon`, `tab`).
    #[arg(long, default_value = ",")]
    delimiter: String,
    /// Quote character (exactly one).
    #[arg(long, default_value = "\"")]
    quote: String,
    /// Escape character (exactly one).
    #[arg(long, default_value = "\"")]
    escape: String,
    /// Rows at most, 1 to 5,000,000.
    #[arg(long, default_value_t = cxrelay_core::export::MAX_ROWS)]
    max_rows: u64,
    /// Align columns.
    #[arg(long)]
    column_alignment: bool,
    /// Sanitize special characters (the delimiter must then differ from quote and escape).
    #[arg(long)]
    sanitize: bool,
    /// Where the target calls back on completion (default: exports.callback_url).
    #[arg(long)]
    callback_url: Option<String>,
    /// Print the export as a JSON object.
    #[arg(long)]
    json: bool,
}

/// Queues one export execution.
pub async fn run(settings: &Settings, a: Args) -> anyhow::Result<ExitCode> {
    let request = ExportRequest {
        data_action: a.data_action,
        dataset: a.dataset,
        delimiter: a.delimiter,
        quote: a.quote,
        escape: a.escape,
        max_rows: a.max_rows,
        column_alignment: a.column_alignment,
        sanitize: a.sanitize,
        callback_url: a.callback_url,
    };
    let row = match App::new(settings).export(request).await {
        Ok(row) => row,
        Err(e) => return refuse(e),
    };
    if a.json {
        println!("{}", serde_json::to_string(&row)?);
    } else {
        println!(
            "export {} queued: data action {}, dataset {} ({} completion)",
            row.id,
            row.data_action,
            row.dataset,
            row.completion.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `cxrelay exports`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print a JSON array of export objects.
    #[arg(long)]
    json: bool,
}

/// Lists the tenant's exports.
pub async fn list(settings: &Settings, a: ListArgs) -> anyhow::Result<ExitCode> {
    let rows = match App::new(settings).exports(a.limit.max(1)).await {
        Ok(rows) => rows,
        Err(e) => return refuse(e),
    };
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("no exports");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<28} {:<10} {:>10} {:>10} {:>6}  {:<24} data action / dataset", "export", "state", "rows", "latency", "age", "execution");
    for r in &rows {
        println!("{}", line(r));
    }
    Ok(ExitCode::SUCCESS)
}

fn line(r: &ExportRow) -> String {
    let dash = || "-".to_owned();
    format!(
        "{:<28} {:<10} {:>10} {:>10} {:>6}  {:<24} {} / {}",
        r.id,
        r.state.as_str(),
        r.rows.map_or_else(dash, |n| n.to_string()),
        r.latency_ms.map_or_else(dash, |ms| format!("{:.1}s", ms as f64 / 1000.0)),
        r.created_ms.map_or_else(dash, age),
        r.execution_id.clone().unwrap_or_else(dash),
        r.data_action,
        r.dataset
    )
}
