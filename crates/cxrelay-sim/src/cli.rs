//! The `cxrelay sim` subcommand: command-line flags ([`SimArgs`]) and [`run`], which serves until
//! Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cxrelay_core::Secret;

use crate::config::SimConfig;
use crate::error::SimError;
use crate::export_settings::{ExportCompletion, ExportStatus, MAX_EXPORT_DURATION};
use crate::server::SimServer;

/// Flags of `cxrelay sim`.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// IP address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// OAuth client id the token endpoint accepts.
    #[arg(long, default_value = "sim-client")]
    pub client_id: String,
    /// OAuth client secret the token endpoint accepts.
    #[arg(long, env = "CXRELAY_SIM_CLIENT_SECRET", hide_env_values = true, default_value = "sim-secret")]
    pub client_secret: Secret,
    /// Lifetime of issued tokens in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// Execute requests per second allowed (GCRA); 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Burst of the rate limiter; 0 = same as --rate.
    #[arg(long, default_value_t = 0)]
    pub burst: u32,
    /// Send 429 answers without a Retry-After header.
    #[arg(long)]
    pub no_retry_after: bool,
    /// Fixed latency of each execute request in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability of a latency spike instead of the fixed latency.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub spike_probability: f64,
    /// Latency of a spike in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub spike_ms: u64,
    /// Probability of answering a random 500/502/503.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub error_rate: f64,
    /// Probability of dropping the connection without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub reset_rate: f64,
    /// Echo every request header (secrets included) in non-2xx JSON answers as "request_headers".
    #[arg(long)]
    pub echo_headers: bool,
    /// Send X-RateLimit-Limit, RateLimit-Limit and RateLimit-Policy on 2xx and 429 execute answers
    /// (only with --rate).
    #[arg(long)]
    pub rate_limit_headers: bool,
    /// Standard Webhooks secret (whsec_<base64>) that POST /_sim/webhooks verifies signatures with;
    /// without it unsigned deliveries are accepted.
    #[arg(long, env = "CXRELAY_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
    /// Access key id (password-grant username) CXone's /auth/token accepts.
    #[arg(long, default_value = "sim-access-key")]
    pub access_key_id: String,
    /// Access key secret (password-grant password) CXone's /auth/token accepts.
    #[arg(long, env = "CXRELAY_SIM_ACCESS_KEY_SECRET", hide_env_values = true, default_value = "sim-access-secret==")]
    pub access_key_secret: Secret,
    /// Tenant id in CXone tokens and served by /.well-known/cxone-configuration.
    #[arg(long, default_value = "11111111-2222-3333-4444-555555555555")]
    pub tenant_id: String,
    /// Leave seed execute requests out of the request log (/_sim/requests).
    #[arg(long)]
    pub no_request_log: bool,
    /// How submitted exports and report jobs finish: a callback (polling works too), polling only, or never.
    #[arg(long, value_enum, default_value_t = ExportCompletion::Callback)]
    pub export_completion: ExportCompletion,
    /// Time from an export's submission to its completion in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(..=MAX_EXPORT_DURATION.as_millis() as u64))]
    pub export_duration_ms: u64,
    /// Rows a completed export reports (capped by the request's maxRows).
    #[arg(long, default_value_t = 1234)]
    pub export_rows: u64,
    /// Outcome finished exports report.
    #[arg(long, value_enum, default_value_t = ExportStatus::Completed)]
    pub export_status: ExportStatus,
    /// Standard Webhooks secret (whsec_<base64>) export callbacks are signed with; unsigned without it.
    #[arg(long, env = "CXRELAY_SIM_EXPORT_CALLBACK_SECRET", hide_env_values = true)]
    pub export_callback_secret: Option<Secret>,
    /// Submissions for one data action closer together than this (milliseconds) count as spacing violations.
    #[arg(long, default_value_t = 2000)]
    pub export_min_spacing_ms: u64,
}

impl SimArgs {
    /// The simulator configuration these flags describe.
    pub fn to_config(&self) -> SimConfig {
        SimConfig {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_lifetime: Duration::from_secs(self.token_ttl_secs),
            rate_per_second: self.rate,
            burst: self.burst,
            retry_after: !self.no_retry_after,
            latency: Duration::from_millis(self.latency_ms),
            spike_probability: self.spike_probability,
            spike: Duration::from_millis(self.spike_ms),
            error_rate: self.error_rate,
            reset_rate: self.reset_rate,
            echo_headers: self.echo_headers,
            rate_limit_headers: self.rate_limit_headers,
            webhook_secret: self.webhook_secret.clone(),
            access_key_id: self.access_key_id.clone(),
            access_key_secret: self.access_key_secret.clone(),
            tenant_id: self.tenant_id.clone(),
            log_requests: !self.no_request_log,
            export_completion: self.export_completion,
            export_duration: Duration::from_millis(self.export_duration_ms),
            export_rows: self.export_rows,
            export_status: self.export_status,
            export_callback_secret: self.export_callback_secret.clone(),
            export_min_spacing: Duration::from_millis(self.export_min_spacing_ms),
            ..SimConfig::default()
        }
    }

    /// The address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability in [0, 1]"))
    }
}

/// Serves the simulator until Ctrl-C or SIGTERM; prints `cxrelay-sim listening on <base url>` once bound.
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    let config = args.to_config();
    config.validate()?;
    let addr = args.socket_addr();
    let server = SimServer::start(config, addr).await.map_err(|source| SimError::Bind { addr, source })?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "cxrelay-sim listening on {}", server.base_url()).map_err(SimError::Stdout)?;
        out.flush().map_err(SimError::Stdout)?;
    }
    let waited = wait_for_signal().await;
    tracing::info!("cxrelay-sim shutting down");
    server.shutdown().await;
    waited
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), SimError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(SimError::Signal)?;
    tokio::select! {
        res = tokio::signal::ctrl_c() => res.map_err(SimError::Signal),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), SimError> {
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn defaults_match_sim_config() {
        let cli = Cli::try_parse_from(["sim"]).unwrap();
        assert_eq!(cli.sim.socket_addr(), "127.0.0.1:8089".parse().unwrap());
        let c = cli.sim.to_config();
        let d = SimConfig::default();
        assert_eq!((c.client_id, c.token_lifetime, c.retry_after), (d.client_id, d.token_lifetime, true));
        assert_eq!((c.echo_headers, c.rate_limit_headers), (d.echo_headers, d.rate_limit_headers));
        assert!(!format!("{:?}", cli.sim).contains("sim-secret"));
        assert_eq!((&c.access_key_id, c.access_key_secret.expose(), &c.tenant_id), (&d.access_key_id, d.access_key_secret.expose(), &d.tenant_id));
        assert_eq!(
            (c.log_requests, c.export_completion, c.export_duration, c.export_rows),
            (true, d.export_completion, d.export_duration, d.export_rows)
        );
        assert_eq!((c.export_status, c.export_min_spacing, c.export_callback_secret.is_none()), (d.export_status, d.export_min_spacing, true));
        assert!(!format!("{:?}", cli.sim).contains("sim-access-secret"));
    }

    #[test]
    fn flags_are_mapped() {
        let cli = Cli::try_parse_from([
            "sim",
            "--port",
            "0",
            "--rate",
            "50",
            "--burst",
            "5",
            "--no-retry-after",
            "--latency-ms",
            "3",
            "--error-rate",
            "0.25",
            "--token-ttl-secs",
            "3",
            "--echo-headers",
            "--rate-limit-headers",
        ])
        .unwrap();
        let c = cli.sim.to_config();
        assert!(c.echo_headers && c.rate_limit_headers);
        assert_eq!((c.rate_per_second, c.burst, c.retry_after), (50, 5, false));
        assert_eq!(c.latency, Duration::from_millis(3));
        assert_eq!(c.token_lifetime, Duration::from_secs(3));
        assert_eq!(c.error_rate, 0.25);
        assert!(c.webhook_secret.is_none());
        let cli = Cli::try_parse_from(["sim", "--webhook-secret", "whsec_c2VjcmV0LWtleQ=="]).unwrap();
        assert_eq!(cli.sim.to_config().webhook_secret.unwrap().expose(), "whsec_c2VjcmV0LWtleQ==");
        assert!(!format!("{:?}", cli.sim).contains("c2VjcmV0LWtleQ"));
        assert!(Cli::try_parse_from(["sim", "--reset-rate", "1.5"]).is_err());
        let cli = Cli::try_parse_from([
            "sim",
            "--access-key-id",
            "AK",
            "--access-key-secret",
            "c2VjcmV0==",
            "--tenant-id",
            "t-9",
            "--no-request-log",
            "--export-completion",
            "poll",
            "--export-duration-ms",
            "50",
            "--export-rows",
            "7",
            "--export-status",
            "failed",
            "--export-callback-secret",
            "whsec_Y2FsbGJhY2sgc2lnbmluZyBrZXk=",
            "--export-min-spacing-ms",
            "10",
        ])
        .unwrap();
        let c = cli.sim.to_config();
        c.validate().unwrap();
        assert_eq!((c.access_key_id.as_str(), c.access_key_secret.expose(), c.tenant_id.as_str()), ("AK", "c2VjcmV0==", "t-9"));
        assert_eq!((c.log_requests, c.export_completion, c.export_duration), (false, ExportCompletion::Poll, Duration::from_millis(50)));
        assert_eq!((c.export_rows, c.export_status, c.export_min_spacing), (7, ExportStatus::Failed, Duration::from_millis(10)));
        assert_eq!(c.export_callback_secret.unwrap().expose(), "whsec_Y2FsbGJhY2sgc2lnbmluZyBrZXk=");
        assert!(!format!("{:?}", cli.sim).contains("c2VjcmV0") && !format!("{:?}", cli.sim).contains("Y2FsbGJhY2s"));
        assert!(Cli::try_parse_from(["sim", "--export-completion", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--export-duration-ms", "86400001"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--token-ttl-secs", "0"]).is_err());
    }
}
