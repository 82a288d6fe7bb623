//! Simulator configuration: the start-up [`SimConfig`], the runtime [`FaultUpdate`] wire type and the
//! effective fault state (`Faults`) that the execute handler reads on every request.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use cxrelay_core::Secret;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::export_settings::{check_duration, ExportCompletion, ExportStatus};

/// Scopes granted when a token request names none.
pub const DEFAULT_SCOPES: &str = "datapoint:actions:execute datapoint:actions:read";

/// Start-up configuration of a simulator instance.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// OAuth client id accepted by `/oauth/token`.
    pub client_id: String,
    /// OAuth client secret accepted by `/oauth/token` (never logged).
    pub client_secret: Secret,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Scope a token must carry to call the execute endpoint.
    pub required_scope: String,
    /// Largest accepted execute body in bytes; larger bodies get 413.
    pub max_payload_bytes: usize,
    /// Sustained execute rate in requests per second (GCRA); 0 means unlimited.
    pub rate_per_second: u32,
    /// Burst size of the rate limiter; 0 means "same as `rate_per_second`".
    pub burst: u32,
    /// Whether 429 answers carry a `Retry-After` header.
    pub retry_after: bool,
    /// Fixed latency added to every execute request that passes validation.
    pub latency: Duration,
    /// Probability in `[0, 1]` that `spike` is slept instead of `latency`.
    pub spike_probability: f64,
    /// Latency of a spike.
    pub spike: Duration,
    /// Probability in `[0, 1]` of answering a random 500/502/503.
    pub error_rate: f64,
    /// Probability in `[0, 1]` of dropping the connection without an answer.
    pub reset_rate: f64,
    /// Whether non-2xx JSON answers (execute and token) echo every request header, secrets included,
    /// as `"request_headers"`; lets a client's tests prove it redacts what a careless target echoes.
    pub echo_headers: bool,
    /// Whether execute answers (2xx and 429) advertise the configured rate in `X-RateLimit-Limit`,
    /// `RateLimit-Limit` and `RateLimit-Policy` (only while a rate limit is configured).
    pub rate_limit_headers: bool,
    /// Standard Webhooks secret (`whsec_<base64>`) that `POST /_sim/webhooks` verifies signatures with
    /// (never logged); `None` accepts unsigned deliveries and records them as not verified.
    pub webhook_secret: Option<Secret>,
    /// Access key id (the `username` of the CXone password grant) accepted by `/auth/token`.
    pub access_key_id: String,
    /// Access key secret (the `password` of the CXone password grant; never logged). Real keys end in `=`.
    pub access_key_secret: Secret,
    /// Tenant id put in the `tenantId` claim of CXone tokens and served by `/.well-known/cxone-configuration`.
    pub tenant_id: String,
    /// Whether seed execute requests go to the request log (`/_sim/requests`); the other logged routes
    /// are always recorded.
    pub log_requests: bool,
    /// How submitted exports and report jobs finish.
    pub export_completion: ExportCompletion,
    /// Time from an export's submission to its completion.
    pub export_duration: Duration,
    /// Rows a completed export reports (capped by the request's `maxRows`).
    pub export_rows: u64,
    /// Outcome finished exports report.
    pub export_status: ExportStatus,
    /// Standard Webhooks secret (`whsec_<base64>`) export callbacks are signed with (never logged);
    /// `None` sends them unsigned.
    pub export_callback_secret: Option<Secret>,
    /// Submissions for one data action closer together than this count as spacing violations.
    pub export_min_spacing: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "sim-client".to_owned(),
            client_secret: Secret::new("sim-secret"),
            token_lifetime: Duration::from_secs(3600),
            required_scope: "datapoint:actions:execute".to_owned(),
            max_payload_bytes: 256 * 1024,
            rate_per_second: 0,
            burst: 0,
            retry_after: true,
            latency: Duration::ZERO,
            spike_probability: 0.0,
            spike: Duration::ZERO,
            error_rate: 0.0,
            reset_rate: 0.0,
            echo_headers: false,
            rate_limit_headers: false,
            webhook_secret: None,
            access_key_id: "sim-access-key".to_owned(),
            access_key_secret: Secret::new("sim-access-secret=="),
            tenant_id: "11111111-2222-3333-4444-555555555555".to_owned(),
            log_requests: true,
            export_completion: ExportCompletion::Callback,
            export_duration: Duration::from_millis(200),
            export_rows: 1234,
            export_status: ExportStatus::Completed,
            export_callback_secret: None,
            export_min_spacing: Duration::from_secs(2),
        }
    }
}

impl SimConfig {
    /// Checks ranges (probabilities in `[0, 1]`, non-zero token lifetime, export duration up to a day),
    /// non-empty access key and tenant, and that the webhook and callback secrets decode.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.token_lifetime.is_zero() {
            return Err(SimError::invalid("token_lifetime", "must be greater than zero"));
        }
        if self.required_scope.trim().is_empty() {
            return Err(SimError::invalid("required_scope", "must not be empty"));
        }
        check_probability("spike_probability", self.spike_probability)?;
        check_probability("error_rate", self.error_rate)?;
        check_probability("reset_rate", self.reset_rate)?;
        if let Some(secret) = &self.webhook_secret {
            crate::webhooks::signing_key(secret).map_err(|reason| SimError::invalid("webhook_secret", reason))?;
        }
        if self.access_key_id.trim().is_empty() {
            return Err(SimError::invalid("access_key_id", "must not be empty"));
        }
        if self.tenant_id.trim().is_empty() {
            return Err(SimError::invalid("tenant_id", "must not be empty"));
        }
        check_duration("export_duration", self.export_duration)?;
        if let Some(secret) = &self.export_callback_secret {
            // The signer's own check, so that what is accepted here always signs.
            cxrelay_core::webhook::signing_key(secret).map_err(|reason| SimError::invalid("export_callback_secret", reason))?;
        }
        Ok(())
    }
}

/// Runtime change of the fault settings (`POST /_sim/faults`); absent fields keep their value.
///
/// The same type is returned as the effective configuration, with every field filled in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultUpdate {
    /// Probability of a random 500/502/503.
    pub error_rate: Option<f64>,
    /// Probability of a dropped connection.
    pub reset_rate: Option<f64>,
    /// Fixed latency in milliseconds.
    pub latency_ms: Option<u64>,
    /// Probability of a latency spike.
    pub spike_probability: Option<f64>,
    /// Latency of a spike in milliseconds.
    pub spike_ms: Option<u64>,
    /// Sustained rate in requests per second; 0 = unlimited.
    pub rate_per_second: Option<u32>,
    /// Burst of the rate limiter; 0 = same as the rate.
    pub burst: Option<u32>,
    /// Whether 429 answers carry `Retry-After`.
    pub retry_after: Option<bool>,
    /// Forced status window; in the effective config, the remaining window (or `null`).
    pub force_status: Option<ForceStatus>,
    /// Whether non-2xx answers echo the request headers as `"request_headers"`.
    pub echo_headers: Option<bool>,
    /// Whether execute answers carry the rate-limit headers while a rate limit is configured.
    pub rate_limit_headers: Option<bool>,
}

/// A window during which every execute request answers a fixed status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceStatus {
    /// Status to answer (400..=599).
    pub status: u16,
    /// Length of the window in milliseconds from now (0 clears a running window).
    pub for_ms: u64,
    /// `Retry-After` seconds to send with a forced 429 (none when absent).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

/// An active forced-status window.
#[derive(Debug, Clone)]
pub(crate) struct Forced {
    pub status: axum::http::StatusCode,
    pub until: Instant,
    pub retry_after_secs: Option<u64>,
}

/// Effective fault settings; replaced wholesale (copy-on-write) on every update.
pub(crate) struct Faults {
    pub error_rate: f64,
    pub reset_rate: f64,
    pub latency: Duration,
    pub spike_probability: f64,
    pub spike: Duration,
    pub rate_per_second: u32,
    pub burst: u32,
    pub retry_after: bool,
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub force: Option<Forced>,
    pub echo_headers: bool,
    pub rate_limit_headers: bool,
    /// The rate-limit header values, built once per update; `None` when off or unlimited.
    pub limit_headers: Option<LimitHeaders>,
}

/// Values of the rate-limit headers for the configured rate.
#[derive(Debug, Clone)]
pub(crate) struct LimitHeaders {
    /// `X-RateLimit-Limit` and `RateLimit-Limit`: the rate per second.
    pub limit: HeaderValue,
    /// `RateLimit-Policy`: `<rate>;w=1`.
    pub policy: HeaderValue,
}

impl LimitHeaders {
    /// The values for `rate` per second, or `None` when the headers are off or the rate unlimited.
    fn new(enabled: bool, rate: u32) -> Option<LimitHeaders> {
        (enabled && rate > 0).then(|| LimitHeaders {
            limit: HeaderValue::from(rate),
            policy: HeaderValue::try_from(format!("{rate};w=1")).expect("digits and ';w=1' are a valid header value"),
        })
    }
}

impl Faults {
    /// Initial fault state from a validated config.
    pub fn from_config(c: &SimConfig) -> Faults {
        Faults {
            error_rate: c.error_rate,
            reset_rate: c.reset_rate,
            latency: c.latency,
            spike_probability: c.spike_probability,
            spike: c.spike,
            rate_per_second: c.rate_per_second,
            burst: c.burst,
            retry_after: c.retry_after,
            limiter: build_limiter(c.rate_per_second, c.burst),
            force: None,
            echo_headers: c.echo_headers,
            rate_limit_headers: c.rate_limit_headers,
            limit_headers: LimitHeaders::new(c.rate_limit_headers, c.rate_per_second),
        }
    }

    /// New state with `u` applied; the limiter (and its GCRA state) is kept when rate and burst stay.
    pub fn apply(&self, u: &FaultUpdate, now: Instant) -> Result<Faults, SimError> {
        let prob = |field, new: Option<f64>, old: f64| -> Result<f64, SimError> {
            match new {
                Some(p) => check_probability(field, p).map(|_| p),
                None => Ok(old),
            }
        };
        let error_rate = prob("error_rate", u.error_rate, self.error_rate)?;
        let reset_rate = prob("reset_rate", u.reset_rate, self.reset_rate)?;
        let spike_probability = prob("spike_probability", u.spike_probability, self.spike_probability)?;
        let rate_per_second = u.rate_per_second.unwrap_or(self.rate_per_second);
        let burst = u.burst.unwrap_or(self.burst);
        let limiter =
            if rate_per_second == self.rate_per_second && burst == self.burst { self.limiter.clone() } else { build_limiter(rate_per_second, burst) };
        let force = match &u.force_status {
            None => self.force.clone(),
            Some(f) if f.for_ms == 0 => None,
            Some(f) => {
                if !(400..=599).contains(&f.status) {
                    return Err(SimError::invalid("force_status.status", format!("{} is not in 400..=599", f.status)));
                }
                let status = axum::http::StatusCode::from_u16(f.status).map_err(|e| SimError::invalid("force_status.status", e.to_string()))?;
                Some(Forced { status, until: now + Duration::from_millis(f.for_ms), retry_after_secs: f.retry_after_secs })
            }
        };
        let rate_limit_headers = u.rate_limit_headers.unwrap_or(self.rate_limit_headers);
        Ok(Faults {
            error_rate,
            reset_rate,
            latency: u.latency_ms.map_or(self.latency, Duration::from_millis),
            spike_probability,
            spike: u.spike_ms.map_or(self.spike, Duration::from_millis),
            rate_per_second,
            burst,
            retry_after: u.retry_after.unwrap_or(self.retry_after),
            limiter,
            force,
            echo_headers: u.echo_headers.unwrap_or(self.echo_headers),
            rate_limit_headers,
            limit_headers: LimitHeaders::new(rate_limit_headers, rate_per_second),
        })
    }

    /// The forced window if it is still running at `now`.
    pub fn active_force(&self, now: Instant) -> Option<&Forced> {
        self.force.as_ref().filter(|f| now < f.until)
    }

    /// The effective settings as a fully populated [`FaultUpdate`].
    pub fn effective(&self, now: Instant) -> FaultUpdate {
        FaultUpdate {
            error_rate: Some(self.error_rate),
            reset_rate: Some(self.reset_rate),
            latency_ms: Some(millis(self.latency)),
            spike_probability: Some(self.spike_probability),
            spike_ms: Some(millis(self.spike)),
            rate_per_second: Some(self.rate_per_second),
            burst: Some(self.burst),
            retry_after: Some(self.retry_after),
            force_status: self.active_force(now).map(|f| ForceStatus {
                status: f.status.as_u16(),
                for_ms: millis(f.until.saturating_duration_since(now)).max(1),
                retry_after_secs: f.retry_after_secs,
            }),
            echo_headers: Some(self.echo_headers),
            rate_limit_headers: Some(self.rate_limit_headers),
        }
    }
}

/// Clamps an untrusted update so that it always applies (used by the infallible `set_faults`).
pub(crate) fn sanitize(mut u: FaultUpdate) -> FaultUpdate {
    let clamp = |p: Option<f64>| p.map(|p| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) });
    u.error_rate = clamp(u.error_rate);
    u.reset_rate = clamp(u.reset_rate);
    u.spike_probability = clamp(u.spike_probability);
    if let Some(f) = &u.force_status {
        if !(400..=599).contains(&f.status) {
            u.force_status = None;
        }
    }
    u
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_probability(field: &'static str, p: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(SimError::invalid(field, format!("{p} is not a probability in [0, 1]")))
    }
}

fn build_limiter(rate: u32, burst: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_redacts_secret() {
        let c = SimConfig::default();
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("sim-secret"));
        let c = SimConfig { webhook_secret: Some(Secret::new("whsec_c2VjcmV0LWtleQ==")), ..SimConfig::default() };
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("c2VjcmV0LWtleQ"));
        let bad = SimConfig { webhook_secret: Some(Secret::new("whsec_%%%")), ..SimConfig::default() };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("webhook_secret") && !err.contains("%%%"), "{err}");
        assert!(!format!("{c:?}").contains("sim-access-secret"));
        let bad = SimConfig { export_callback_secret: Some(Secret::new("whsec_c2hvcnQ=")), ..SimConfig::default() };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("export_callback_secret") && !err.contains("c2hvcnQ"), "{err}");
        let bad = SimConfig { export_duration: Duration::from_secs(2 * 24 * 3600), ..SimConfig::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("export_duration"));
    }

    #[test]
    fn apply_keeps_unset_fields_and_rejects_bad_probability() {
        let now = Instant::now();
        let f = Faults::from_config(&SimConfig::default());
        let g = f.apply(&FaultUpdate { latency_ms: Some(5), ..Default::default() }, now).unwrap();
        assert_eq!(g.latency, Duration::from_millis(5));
        assert!(g.retry_after);
        assert!(g.limiter.is_none());
        let err = g.apply(&FaultUpdate { error_rate: Some(1.5), ..Default::default() }, now);
        assert!(matches!(err, Err(SimError::InvalidSetting { field: "error_rate", .. })));
    }

    #[test]
    fn force_window_is_reported_and_cleared() {
        let now = Instant::now();
        let f = Faults::from_config(&SimConfig::default());
        let force = ForceStatus { status: 503, for_ms: 1000, retry_after_secs: None };
        let g = f.apply(&FaultUpdate { force_status: Some(force), ..Default::default() }, now).unwrap();
        assert_eq!(g.effective(now).force_status.unwrap().status, 503);
        assert!(g.active_force(now + Duration::from_secs(2)).is_none());
        let clear = ForceStatus { status: 503, for_ms: 0, retry_after_secs: None };
        let h = g.apply(&FaultUpdate { force_status: Some(clear), ..Default::default() }, now).unwrap();
        assert!(h.active_force(now).is_none());
    }

    #[test]
    fn header_switches_apply_and_are_reported() {
        let now = Instant::now();
        let f = Faults::from_config(&SimConfig { rate_per_second: 20, ..SimConfig::default() });
        assert!(!f.echo_headers && f.limit_headers.is_none());
        let g = f.apply(&FaultUpdate { echo_headers: Some(true), rate_limit_headers: Some(true), ..Default::default() }, now).unwrap();
        let h = g.limit_headers.as_ref().unwrap();
        assert_eq!((h.limit.to_str().unwrap(), h.policy.to_str().unwrap()), ("20", "20;w=1"));
        let e = g.effective(now);
        assert_eq!((e.echo_headers, e.rate_limit_headers), (Some(true), Some(true)));
        // Lifting the rate limit drops the headers; the switch itself stays on.
        let unlimited = g.apply(&FaultUpdate { rate_per_second: Some(0), ..Default::default() }, now).unwrap();
        assert!(unlimited.rate_limit_headers && unlimited.limit_headers.is_none());
        assert!(unlimited.echo_headers);
    }

    #[test]
    fn sanitize_clamps() {
        let u = sanitize(FaultUpdate { error_rate: Some(3.0), reset_rate: Some(f64::NAN), ..Default::default() });
        assert_eq!(u.error_rate, Some(1.0));
        assert_eq!(u.reset_rate, Some(0.0));
    }
}
