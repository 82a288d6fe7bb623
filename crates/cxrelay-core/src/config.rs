//! Settings: what a `cxrelay.toml` file and `CXRELAY_*` environment variables mean.
//!
//! Pure: the caller supplies the file's text and an environment lookup, so every rule
//! (defaults, overrides, validation with messages naming the key) is unit tested here.

use std::time::Duration;

use serde::Deserialize;

use crate::payload::BodyShape;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file did not parse or had unknown keys.
    #[error("config file: {0}")]
    File(String),
    /// An environment variable had a value of the wrong form.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// Variable name.
        var: &'static str,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A setting's value is out of range.
    #[error("setting {key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `worker.concurrency`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// How the worker obtains its bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// OAuth2 client credentials, form body, id/secret as HTTP Basic (the seed's first tutorial).
    #[default]
    ClientCredentialsForm,
    /// OAuth2 client credentials with a JSON body (the seed's second tutorial).
    ClientCredentialsJson,
    /// A fixed bearer token (`CXRELAY_TOKEN`).
    StaticBearer,
}

/// The API the worker calls.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSettings {
    /// Base URL of the API, e.g. `http://127.0.0.1:8089`.
    pub api_base: String,
    /// Token endpoint URL; defaults to `{api_base}/oauth/token`.
    pub token_url: Option<String>,
    /// How to authenticate.
    pub auth: AuthMode,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// Bearer token for `static_bearer`.
    pub token: Secret,
    /// Scopes requested with client credentials.
    pub scope: String,
    /// Execute path template; `{action}` is replaced by the action id.
    pub execute_path: String,
    /// How the body wraps an item.
    pub body: BodyShape,
    /// Per-request timeout in ms.
    pub request_timeout_ms: u64,
    /// The tenant: a run belongs to one, a worker delivers only its own tenant's runs, and the
    /// rate budget and breaker are shared per tenant across the fleet.
    pub tenant: String,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            api_base: "http://127.0.0.1:8089".into(),
            token_url: None,
            auth: AuthMode::default(),
            client_id: String::new(),
            client_secret: Secret::default(),
            token: Secret::default(),
            scope: "datapoint:actions:execute datapoint:actions:read".into(),
            execute_path: "/api/v1/datapoint/actions/{action}/execute".into(),
            body: BodyShape::Envelope,
            request_timeout_ms: 30_000,
            tenant: "default".into(),
        }
    }
}

impl TargetSettings {
    /// The token endpoint: explicit, or `{api_base}/oauth/token`.
    pub fn token_url(&self) -> String {
        self.token_url.clone().unwrap_or_else(|| format!("{}/oauth/token", self.api_base.trim_end_matches('/')))
    }
}

/// How a worker process runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Items in flight per process.
    pub concurrency: usize,
    /// A delivered item not acknowledged or renewed within this many ms goes to another worker.
    pub lease_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight items may take to finish.
    pub shutdown_timeout_ms: u64,
    /// An item taken over from a dead or stalled worker more than this many times is failed as
    /// poison instead of being sent again.
    pub max_redeliveries: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { concurrency: 64, lease_ms: 10_000, shutdown_timeout_ms: 30_000, max_redeliveries: 5 }
    }
}

/// Retry budget and backoff.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all before an item fails permanently.
    pub max_attempts: u32,
    /// First backoff in ms (doubles per attempt, full jitter).
    pub backoff_base_ms: u64,
    /// Largest backoff in ms.
    pub backoff_cap_ms: u64,
    /// 429 answers an item may meet before it fails; they do not spend `max_attempts`, since
    /// a 429 says the target is busy, not that the item is wrong.
    pub max_throttled: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let p = RetryPolicy::default();
        Self {
            max_attempts: p.max_attempts,
            backoff_base_ms: p.base.as_millis() as u64,
            backoff_cap_ms: p.cap.as_millis() as u64,
            max_throttled: p.max_throttled,
        }
    }
}

impl RetrySettings {
    /// The policy these settings describe.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: Duration::from_millis(self.backoff_base_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
            max_throttled: self.max_throttled,
            ..RetryPolicy::default()
        }
    }
}

/// The fleet-wide request budget of one tenant (every action of the tenant shares it, as real
/// tenants are limited), with optional per-action sub-limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// Requests per second for the whole fleet. Absent (the default): discover the target's
    /// limit, starting at `initial_rate` and growing until 429s reveal it. `0`: no limit at all
    /// (429s still pause the fleet). A number: at most that, lowered on 429s when `adaptive`.
    pub rate: Option<f64>,
    /// Where discovery starts, requests per second.
    pub initial_rate: f64,
    /// Discovery never goes above this, requests per second.
    pub max_rate: f64,
    /// Requests allowed above the rate at once.
    pub burst: u32,
    /// Lower the rate on 429s and recover it slowly.
    pub adaptive: bool,
    /// A worker holds an item at most this long waiting for its send slot; beyond, the item is
    /// deferred in Redis instead of occupying the worker.
    pub max_wait_ms: u64,
    /// Fleet-wide pause after a 429 that carries no `Retry-After`.
    pub pause_ms: u64,
    /// Per-action sub-limits (requests per second), on top of the tenant's budget.
    pub actions: std::collections::BTreeMap<String, f64>,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            rate: None,
            initial_rate: 50.0,
            max_rate: 100_000.0,
            burst: 1,
            adaptive: true,
            max_wait_ms: 2000,
            pause_ms: 1000,
            actions: Default::default(),
        }
    }
}

/// What the rate settings ask of the fleet budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateMode {
    /// No budget: only 429 pauses.
    Unlimited,
    /// A configured ceiling (adaptive or not).
    Fixed(f64),
    /// Discover the limit from the target's answers.
    Discover {
        /// Starting rate.
        initial: f64,
        /// Highest rate discovery may reach.
        max: f64,
    },
}

impl RateSettings {
    /// The mode these settings describe.
    pub fn mode(&self) -> RateMode {
        match self.rate {
            None => RateMode::Discover { initial: self.initial_rate, max: self.max_rate },
            Some(r) if r <= 0.0 => RateMode::Unlimited,
            Some(r) => RateMode::Fixed(r),
        }
    }
}

/// Fleet-wide circuit breaker (per tenant): opens when, within the last `window_ms`, more than
/// `threshold` requests failed with a 5xx or no answer AND they were at least `failure_ratio` of
/// all answers; a healthy target's random errors never reach the ratio.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Failures in the window above which the breaker may open (the seed's "more than 5").
    pub threshold: u32,
    /// Share of failures among answers in the window needed to open, 0–1.
    pub failure_ratio: f64,
    /// The sliding window, in ms (whole seconds are used).
    pub window_ms: u64,
    /// How long it stays open before one probe, in ms.
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { threshold: 5, failure_ratio: 0.5, window_ms: 10_000, cooldown_ms: 10_000 }
    }
}

/// Where and how long the queue keeps its data.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Prefix of every Redis key: deployments sharing one Redis with different namespaces never
    /// see each other's runs, budgets or breakers.
    pub namespace: String,
    /// Seconds a finished run's per-item data is kept.
    pub retention_secs: u64,
    /// Attempts kept in an item's history (the last N).
    pub history_len: u32,
    /// Seconds a run that is still loading lives without a new chunk: a producer killed
    /// mid-load leaves a run that expires instead of one workers look at forever.
    pub loading_ttl_secs: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { namespace: "cxr".into(), retention_secs: 7 * 24 * 3600, history_len: 10, loading_ttl_secs: 24 * 3600 }
    }
}

/// Everything configurable, from `cxrelay.toml` plus environment overrides.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Redis URL (`redis://host:port/db`, `rediss://…` for TLS, `unix:///path`, ACL
    /// `user:password@`); several comma-separated node URLs select Redis Cluster.
    pub redis_url: Option<String>,
    /// Treat a single `redis_url` as a seed node of a Redis Cluster.
    pub redis_cluster: bool,
    /// PEM file of the CA that signed the Redis server's TLS certificate (a private CA).
    pub redis_ca_cert: Option<String>,
    /// The target API.
    pub target: TargetSettings,
    /// Worker processes.
    pub worker: WorkerSettings,
    /// Retries.
    pub retry: RetrySettings,
    /// Rate limit.
    pub rate_limit: RateSettings,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// Queue housekeeping.
    pub queue: QueueSettings,
}

fn parse_env<T: std::str::FromStr>(var: &'static str, value: String, reason: &'static str) -> Result<T, ConfigError> {
    value.trim().parse::<T>().map_err(|_| ConfigError::Env { var, value, reason })
}

impl Settings {
    /// Parses a TOML file's text (unknown keys are errors, so typos do not pass silently).
    ///
    /// The error names the line and column and says what is wrong, but never quotes the line:
    /// it may hold a secret (`client_secret = "…`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            });
            ConfigError::File(format!("{}{}", at.unwrap_or_default(), crate::redact::redact(e.message().trim())))
        })
    }

    /// Applies environment overrides, then validates.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if let Some(v) = env("REDIS_URL") {
            self.redis_url = Some(v);
        }
        if let Some(v) = env("CXRELAY_REDIS_CLUSTER") {
            self.redis_cluster = parse_env("CXRELAY_REDIS_CLUSTER", v, "expected true or false")?;
        }
        if let Some(v) = env("CXRELAY_REDIS_CA_CERT") {
            self.redis_ca_cert = Some(v);
        }
        let t = &mut self.target;
        if let Some(v) = env("CXRELAY_API_BASE") {
            t.api_base = v;
        }
        if let Some(v) = env("CXRELAY_TOKEN_URL") {
            t.token_url = Some(v);
        }
        if let Some(v) = env("CXRELAY_CLIENT_ID") {
            t.client_id = v;
        }
        if let Some(v) = env("CXRELAY_CLIENT_SECRET") {
            t.client_secret = Secret::new(v);
        }
        if let Some(v) = env("CXRELAY_TOKEN") {
            t.token = Secret::new(v);
        }
        if let Some(v) = env("CXRELAY_TENANT") {
            t.tenant = v;
        }
        if let Some(v) = env("CXRELAY_AUTH") {
            t.auth = match v.as_str() {
                "client_credentials_form" => AuthMode::ClientCredentialsForm,
                "client_credentials_json" => AuthMode::ClientCredentialsJson,
                "static_bearer" => AuthMode::StaticBearer,
                _ => {
                    return Err(ConfigError::Env {
                        var: "CXRELAY_AUTH",
                        value: v,
                        reason: "expected client_credentials_form, client_credentials_json or static_bearer",
                    })
                }
            };
        }
        if let Some(v) = env("CXRELAY_RATE") {
            self.rate_limit.rate = if v.trim() == "auto" {
                None
            } else {
                Some(parse_env("CXRELAY_RATE", v, "expected requests per second, e.g. 500 (0 = no limit, auto = discover)")?)
            };
        }
        if let Some(v) = env("CXRELAY_INITIAL_RATE") {
            self.rate_limit.initial_rate = parse_env("CXRELAY_INITIAL_RATE", v, "expected requests per second")?;
        }
        if let Some(v) = env("CXRELAY_BURST") {
            self.rate_limit.burst = parse_env("CXRELAY_BURST", v, "expected a whole number of requests")?;
        }
        if let Some(v) = env("CXRELAY_ADAPTIVE") {
            self.rate_limit.adaptive = parse_env("CXRELAY_ADAPTIVE", v, "expected true or false")?;
        }
        if let Some(v) = env("CXRELAY_MAX_ATTEMPTS") {
            self.retry.max_attempts = parse_env("CXRELAY_MAX_ATTEMPTS", v, "expected a whole number ≥ 1")?;
        }
        if let Some(v) = env("CXRELAY_MAX_THROTTLED") {
            self.retry.max_throttled = parse_env("CXRELAY_MAX_THROTTLED", v, "expected a whole number ≥ 1")?;
        }
        if let Some(v) = env("CXRELAY_BACKOFF_BASE_MS") {
            self.retry.backoff_base_ms = parse_env("CXRELAY_BACKOFF_BASE_MS", v, "expected milliseconds")?;
        }
        if let Some(v) = env("CXRELAY_LEASE_MS") {
            self.worker.lease_ms = parse_env("CXRELAY_LEASE_MS", v, "expected milliseconds")?;
        }
        if let Some(v) = env("CXRELAY_MAX_REDELIVERIES") {
            self.worker.max_redeliveries = parse_env("CXRELAY_MAX_REDELIVERIES", v, "expected a whole number")?;
        }
        if let Some(v) = env("CXRELAY_REQUEST_TIMEOUT_MS") {
            self.target.request_timeout_ms = parse_env("CXRELAY_REQUEST_TIMEOUT_MS", v, "expected milliseconds")?;
        }
        if let Some(v) = env("CXRELAY_CONCURRENCY") {
            self.worker.concurrency = parse_env("CXRELAY_CONCURRENCY", v, "expected a whole number ≥ 1")?;
        }
        if let Some(v) = env("CXRELAY_BREAKER_THRESHOLD") {
            self.breaker.threshold = parse_env("CXRELAY_BREAKER_THRESHOLD", v, "expected a whole number")?;
        }
        if let Some(v) = env("CXRELAY_BREAKER_COOLDOWN_MS") {
            self.breaker.cooldown_ms = parse_env("CXRELAY_BREAKER_COOLDOWN_MS", v, "expected milliseconds")?;
        }
        if let Some(v) = env("CXRELAY_BREAKER_WINDOW_MS") {
            self.breaker.window_ms = parse_env("CXRELAY_BREAKER_WINDOW_MS", v, "expected milliseconds")?;
        }
        if let Some(v) = env("CXRELAY_NAMESPACE") {
            self.queue.namespace = v;
        }
        if let Some(v) = env("CXRELAY_LOADING_TTL_SECS") {
            self.queue.loading_ttl_secs = parse_env("CXRELAY_LOADING_TTL_SECS", v, "expected seconds")?;
        }
        if let Some(v) = env("CXRELAY_RETENTION_SECS") {
            self.queue.retention_secs = parse_env("CXRELAY_RETENTION_SECS", v, "expected seconds")?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.to_owned() });
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency", "must be at least 1");
        }
        if self.worker.lease_ms < 500 {
            return bad("worker.lease_ms", "must be at least 500 ms");
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts", "must be at least 1");
        }
        if let Some(r) = self.rate_limit.rate {
            if !(r >= 0.0 && r.is_finite()) {
                return bad("rate_limit.rate", "must be a non-negative number (0 = no limit; leave it out to discover the limit)");
            }
        }
        let r = &self.rate_limit;
        if !(r.initial_rate > 0.0 && r.initial_rate.is_finite() && r.max_rate >= r.initial_rate && r.max_rate.is_finite()) {
            return bad("rate_limit.initial_rate", "must be a positive number no larger than rate_limit.max_rate");
        }
        if let Some((action, _)) = r.actions.iter().find(|(_, v)| !(**v > 0.0 && v.is_finite())) {
            return Err(ConfigError::Invalid {
                key: "rate_limit.actions",
                reason: format!("{action:?}: must be a positive number of requests per second"),
            });
        }
        if r.burst == 0 {
            return bad("rate_limit.burst", "must be at least 1");
        }
        if !(self.breaker.failure_ratio > 0.0 && self.breaker.failure_ratio <= 1.0) {
            return bad("breaker.failure_ratio", "must be in (0, 1]");
        }
        if self.breaker.window_ms < 1000 {
            return bad("breaker.window_ms", "must be at least 1000 ms");
        }
        if self.retry.max_throttled == 0 {
            return bad("retry.max_throttled", "must be at least 1");
        }
        if let Err(reason) = crate::ids::check_name(&self.queue.namespace) {
            return Err(ConfigError::Invalid { key: "queue.namespace", reason });
        }
        if let Err(reason) = crate::ids::check_name(&self.target.tenant) {
            return Err(ConfigError::Invalid { key: "target.tenant", reason });
        }
        if self.queue.loading_ttl_secs == 0 {
            return bad("queue.loading_ttl_secs", "must be at least 1 second");
        }
        if !(1..=1000).contains(&self.queue.history_len) {
            return bad("queue.history_len", "must be between 1 and 1000");
        }
        if !self.target.execute_path.contains("{action}") {
            return bad("target.execute_path", "must contain the {action} placeholder");
        }
        if self.target.auth == AuthMode::StaticBearer && self.target.token.is_empty() {
            return bad("target.token", "static_bearer auth needs a token (CXRELAY_TOKEN)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn file_then_env_overrides() {
        let s = Settings::from_toml(
            "redis_url = \"redis://a\"\n[target]\napi_base = \"http://x\"\nclient_secret = \"s3cret\"\n[rate_limit]\nrate = 10\nburst = 2\n",
        )
        .unwrap();
        let s = s.with_env(env(&[("CXRELAY_RATE", "500"), ("CXRELAY_ADAPTIVE", "false"), ("CXRELAY_LEASE_MS", "3000")])).unwrap();
        assert_eq!(s.redis_url.as_deref(), Some("redis://a"));
        assert_eq!(s.target.token_url(), "http://x/oauth/token");
        assert_eq!(s.rate_limit.rate, Some(500.0));
        assert_eq!(s.rate_limit.burst, 2);
        assert!(!s.rate_limit.adaptive);
        assert_eq!(s.worker.lease_ms, 3000);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn rate_defaults_to_discovery() {
        let s = Settings::default().with_env(env(&[])).unwrap();
        assert!(matches!(s.rate_limit.mode(), RateMode::Discover { .. }));
        let s = Settings::default().with_env(env(&[("CXRELAY_RATE", "0")])).unwrap();
        assert_eq!(s.rate_limit.mode(), RateMode::Unlimited);
        let s = Settings::default().with_env(env(&[("CXRELAY_RATE", "auto")])).unwrap();
        assert!(matches!(s.rate_limit.mode(), RateMode::Discover { .. }));
        let s = Settings::from_toml("[rate_limit]\nrate = 200\n[rate_limit.actions]\nslow = 20\n").unwrap();
        assert_eq!(s.rate_limit.mode(), RateMode::Fixed(200.0));
        assert_eq!(s.rate_limit.actions.get("slow"), Some(&20.0));
    }

    #[test]
    fn namespace_and_tenant_are_checked() {
        let s = Settings::default().with_env(env(&[("CXRELAY_NAMESPACE", "team-a"), ("CXRELAY_TENANT", "t1")])).unwrap();
        assert_eq!((s.queue.namespace.as_str(), s.target.tenant.as_str()), ("team-a", "t1"));
        let e = Settings::default().with_env(env(&[("CXRELAY_NAMESPACE", "a{b}")])).unwrap_err().to_string();
        assert!(e.contains("queue.namespace"), "{e}");
        let e = Settings::default().with_env(env(&[("CXRELAY_TENANT", "")])).unwrap_err().to_string();
        assert!(e.contains("target.tenant"), "{e}");
    }

    #[test]
    fn toml_errors_never_quote_the_line() {
        let e = Settings::from_toml("[target]\nclient_secret = \"hunter2-very-secret\n").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = Settings::from_toml("[target]\nclient_secret = hunter2\n").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn errors_name_the_key_or_variable() {
        let e = Settings::from_toml("[worker]\nconcurency = 3\n").unwrap_err().to_string();
        assert!(e.contains("concurency"), "{e}");
        let e = Settings::default().with_env(env(&[("CXRELAY_BURST", "lots")])).unwrap_err().to_string();
        assert!(e.contains("CXRELAY_BURST") && e.contains("lots"), "{e}");
        let e = Settings::default().with_env(env(&[("CXRELAY_CONCURRENCY", "0")])).unwrap_err().to_string();
        assert!(e.contains("worker.concurrency"), "{e}");
    }
}
