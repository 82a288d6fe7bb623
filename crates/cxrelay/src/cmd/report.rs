//! `cxrelay report RUN [--json] [--watch]`: a run's counters, rates, latency, ETA and how its
//! failed items failed.
//!
//! Exit codes: 0 printed (with `--watch`: the run finished and no item failed); 4 with
//! `--watch`, the run finished with failed items or was cancelled; 2 the run does not exist;
//! 1 Redis failed.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use cxrelay_app::App;
use cxrelay_core::config::Settings;
use cxrelay_core::report::RunStatus;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `cxrelay report`.
#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Redraw until the run finishes.
    #[arg(long)]
    watch: bool,
    /// Milliseconds between redraws with --watch.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
}

/// Prints the report (once, or live with `--watch`).
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    if let Err(e) = app.report(&args.run).await {
        return super::refuse(e);
    }
    if !args.watch {
        let report = app.report(&args.run).await?;
        print_report(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let live = std::io::stderr().is_terminal() && !args.json;
    let bar = live.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} {percent}% {msg}").expect("valid template"));
        bar
    });
    loop {
        let report = app.report(&args.run).await?;
        let done = matches!(report.status, RunStatus::Finished | RunStatus::Cancelled);
        match &bar {
            Some(bar) => {
                bar.set_length(report.total);
                bar.set_position(report.succeeded + report.failed + report.validation_failures);
                bar.set_message(format!(
                    "ok {} failed {} pending {} | {:.0}/s | eta {}",
                    report.succeeded,
                    report.failed,
                    report.pending,
                    report.throughput_per_s,
                    report.eta_s.map(|e| format!("{e:.0}s")).unwrap_or_else(|| "-".into())
                ));
            }
            None if !args.json => eprintln!(
                "{}: {}/{} done, {} pending, {:.0}/s",
                report.run_id,
                report.succeeded + report.failed,
                report.accepted,
                report.pending,
                report.throughput_per_s
            ),
            None => {}
        }
        if done {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            print_report(&report, args.json)?;
            // A pipeline waiting on the run learns from the exit code whether anything failed.
            return Ok(if report.failed > 0 || report.cancelled > 0 { ExitCode::from(4) } else { ExitCode::SUCCESS });
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
}

fn print_report(report: &cxrelay_core::report::RunReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
