//! `cxrelay webhooks status [--json]` (per endpoint: pending, delivered, failing since, last
//! error) and `cxrelay webhooks test URL [--secret whsec_…]` (one signed `webhook.test` event).

use std::process::ExitCode;

use cxrelay_app::App;
use cxrelay_core::config::Settings;
use cxrelay_core::Secret;

use super::refuse;

/// Arguments of `cxrelay webhooks`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: WebhooksCommand,
}

#[derive(clap::Subcommand)]
enum WebhooksCommand {
    /// Delivery status of each configured endpoint.
    Status {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Send one signed `webhook.test` event to URL.
    Test {
        /// The endpoint.
        url: String,
        /// Signing secret when URL is not a configured endpoint (`whsec_…`).
        #[arg(long, env = "CXRELAY_WEBHOOK_TEST_SECRET", hide_env_values = true)]
        secret: Option<Secret>,
    },
}

/// Runs the subcommand.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<ExitCode> {
    let app = App::new(settings);
    match args.command {
        WebhooksCommand::Status { json } => {
            let status = match app.webhooks_status().await {
                Ok(s) => s,
                Err(e) => return refuse(e),
            };
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else if status.is_empty() {
                eprintln!("no webhook endpoints configured ([[webhooks]] in the settings file, or CXRELAY_WEBHOOK_URL)");
            } else {
                for s in &status {
                    let health = match &s.failing_since {
                        Some(since) => format!("FAILING since {since}: {}", s.last_error.as_deref().unwrap_or("-")),
                        None => "ok".into(),
                    };
                    println!("{}  pending {}  delivered {}  dropped {}  trimmed {}  {health}", s.url, s.pending, s.delivered, s.dropped, s.trimmed);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Test { url, secret } => match app.webhook_test(&url, secret).await {
            Ok(status) if (200..300).contains(&status) => {
                println!("{url}: HTTP {status}");
                Ok(ExitCode::SUCCESS)
            }
            Ok(status) => {
                eprintln!("error: {url} answered HTTP {status}");
                Ok(ExitCode::from(1))
            }
            Err(e) => refuse(e),
        },
    }
}
