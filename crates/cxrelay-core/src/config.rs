//! Settings: what a `cxrelay.toml` file and `CXRELAY_*` environment variables mean.
//!
//! Pure: the caller supplies the file's text and an environment lookup, so every rule
//! (defaults, overrides, validation with messages naming the key) is unit tested here.
//!
//! Every setting but the `rate_limit.actions` map has an environment variable; [`env_vars`]
//! lists them (name, dotted key, expected form), and that one table is what
//! [`Settings::with_env`] applies, through [figment](https://docs.rs/figment), and what the
//! README's table is checked against.

use std::time::Duration;

use figment::providers::Serialized;
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};

use crate::payload::BodyShape;
use crate::profile::{CommaList, ExportCompletion, Profile};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// OAuth2 client credentials, form body, id/secret as HTTP Basic (the seed's first tutorial).
    #[default]
    ClientCredentialsForm,
    /// OAuth2 client credentials with a JSON body (the seed's second tutorial).
    ClientCredentialsJson,
    /// A fixed bearer token (`CXRELAY_TOKEN`).
    StaticBearer,
    /// NICE CXone: OAuth2 password grant with an API user's access key, client id/secret as
    /// HTTP Basic; token endpoint and API base discovered.
    CxoneAccessKey,
}

/// The API the worker calls. Settings left out take the profile's default
/// ([`crate::profile::resolve`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSettings {
    /// Which API the target speaks: `seed` (default), `cxone`, `genesys` or `custom`.
    pub profile: Profile,
    /// Base URL of the API, e.g. `http://127.0.0.1:8089` (CXone: discovered when absent).
    pub api_base: Option<String>,
    /// Genesys Cloud region host, e.g. `mypurecloud.com` (API base `https://api.{region}`).
    pub region: Option<String>,
    /// OpenID issuer of CXone access keys (default `https://cxone.niceincontact.com`).
    pub issuer: Option<String>,
    /// Token endpoint URL; defaults per profile (seed: `{api_base}/oauth/token`).
    pub token_url: Option<String>,
    /// How to authenticate (default per profile).
    pub auth: Option<AuthMode>,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (never serialized).
    #[serde(skip_serializing)]
    pub client_secret: Secret,
    /// CXone access key id.
    pub access_key_id: String,
    /// CXone access key secret (never serialized).
    #[serde(skip_serializing)]
    pub access_key_secret: Secret,
    /// Bearer token for `static_bearer` (never serialized).
    #[serde(skip_serializing)]
    pub token: Secret,
    /// Scopes requested with client credentials (default per profile).
    pub scope: Option<String>,
    /// Execute path template; `{action}` is replaced by the action id (default per profile).
    pub execute_path: Option<String>,
    /// How the body wraps an item (default per profile).
    pub body: Option<BodyShape>,
    /// Extra headers sent with every API request (`[target.headers]`; the profile's first).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Largest request body in bytes (default 256 KB).
    pub max_payload_bytes: Option<usize>,
    /// Statuses whose `Retry-After` header is believed (default per profile).
    pub retry_after_statuses: Option<CommaList>,
    /// Per-request timeout in ms.
    pub request_timeout_ms: u64,
    /// The tenant: a run belongs to one, a worker delivers only its own tenant's runs, and the
    /// rate budget and breaker are shared per tenant across the fleet.
    pub tenant: String,
}

impl Default for TargetSettings {
    fn default() -> Self {
        Self {
            profile: Profile::default(),
            api_base: None,
            region: None,
            issuer: None,
            token_url: None,
            auth: None,
            client_id: String::new(),
            client_secret: Secret::default(),
            access_key_id: String::new(),
            access_key_secret: Secret::default(),
            token: Secret::default(),
            scope: None,
            execute_path: None,
            body: None,
            headers: Default::default(),
            max_payload_bytes: None,
            retry_after_statuses: None,
            request_timeout_ms: 30_000,
            tenant: "default".into(),
        }
    }
}

impl TargetSettings {
    /// How the body wraps an item: configured, or the profile's.
    pub fn body_shape(&self) -> BodyShape {
        self.body.unwrap_or(self.profile.body())
    }

    /// Largest request body: configured, or the profile's.
    pub fn payload_limit(&self) -> usize {
        self.max_payload_bytes.unwrap_or(self.profile.max_payload_bytes())
    }
}

/// CSV export executions (`[exports]`): how they are submitted, completed and watched. Paths
/// and fields left out take the profile's default.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// Submit path template with `{dataAction}`.
    pub submit_path: Option<String>,
    /// `callback` or `poll`.
    pub completion: Option<ExportCompletion>,
    /// Status path template with `{execution}` (and optionally `{dataAction}`), for polling.
    pub status_path: Option<String>,
    /// JSON pointer to the execution id in the submit answer, e.g. `/executionId`.
    pub execution_id_field: Option<String>,
    /// JSON pointer to the state in a status answer.
    pub status_field: Option<String>,
    /// JSON pointer to the exported rows in a status answer.
    pub rows_field: Option<String>,
    /// JSON pointer to the start time in a status answer.
    pub start_field: Option<String>,
    /// JSON pointer to the end time in a status answer.
    pub end_field: Option<String>,
    /// States meaning completed (comma-separated or an array).
    pub completed_states: Option<CommaList>,
    /// States meaning failed (comma-separated or an array).
    pub failed_states: Option<CommaList>,
    /// How often a polled execution is asked about, ms.
    pub poll_interval_ms: u64,
    /// An execution not completed this long after submission is overdue, seconds.
    pub deadline_secs: u64,
    /// Least time between two submissions for one data action, ms (the seed's 2 s).
    pub min_spacing_ms: u64,
    /// Callback URL sent when an export names none (this server's `/v1/callbacks/export`).
    pub callback_url: Option<String>,
    /// Standard Webhooks secret (`whsec_…`) callbacks are signed with (never serialized).
    #[serde(skip_serializing)]
    pub callback_secret: Secret,
    /// Opt-in secret for `/v1/callbacks/export/{secret}`, for targets that cannot sign (never
    /// serialized).
    #[serde(skip_serializing)]
    pub callback_path_secret: Secret,
    /// Signed callbacks older or newer than this are stale, seconds.
    pub callback_tolerance_secs: u64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            submit_path: None,
            completion: None,
            status_path: None,
            execution_id_field: None,
            status_field: None,
            rows_field: None,
            start_field: None,
            end_field: None,
            completed_states: None,
            failed_states: None,
            poll_interval_ms: 5_000,
            deadline_secs: 3_600,
            min_spacing_ms: 2_000,
            callback_url: None,
            callback_secret: Secret::default(),
            callback_path_secret: Secret::default(),
            callback_tolerance_secs: 300,
        }
    }
}

/// The default lease (ms): short, so a killed worker's items run again within ~2.5 s; it is
/// renewed every third of itself while an item runs, so a slow item is never taken over.
pub const DEFAULT_LEASE_MS: u64 = 2_000;

/// How a worker process runs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Items in flight per process.
    pub concurrency: usize,
    /// Threads of the worker's async runtime. 1 (the default) runs everything on one thread,
    /// the cheapest per item: scale out with processes (one per core) rather than threads.
    pub threads: usize,
    /// A delivered item not acknowledged or renewed within this many ms goes to another worker.
    pub lease_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight items may take to finish.
    pub shutdown_timeout_ms: u64,
    /// An item taken over from a dead or stalled worker more than this many times is failed as
    /// poison instead of being sent again.
    pub max_redeliveries: u32,
    /// Where the per-attempt audit log goes, one JSON object per line: `stdout` or a file path
    /// (appended to); `None`: no audit log (the run's audit stream in Redis is kept regardless).
    pub audit_log: Option<String>,
    /// Address of the worker's `/metrics`, `/healthz` and `/readyz` (`None`: not served).
    pub metrics_addr: Option<String>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            audit_log: None,
            metrics_addr: None,
            concurrency: 64,
            threads: 1,
            lease_ms: DEFAULT_LEASE_MS,
            shutdown_timeout_ms: 30_000,
            max_redeliveries: 5,
        }
    }
}

/// Retry budget and backoff.
#[derive(Clone, Debug, Deserialize, Serialize)]
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
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// Requests per second for the whole fleet. Absent (the default): discover the target's
    /// limit, starting at `initial_rate` and growing until 429s reveal it. `0`: no limit at all
    /// (429s still pause the fleet). A number: at most that, lowered on 429s when `adaptive`.
    /// `"auto"` is the same as absent.
    #[serde(deserialize_with = "rate_or_auto")]
    pub rate: Option<RateValue>,
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

/// A configured `rate_limit.rate`: requests per second, or `"auto"` (discover the limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateValue {
    /// Requests per second (0 = no limit).
    PerSecond(f64),
    /// Discover the limit.
    Auto,
}

impl Serialize for RateValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RateValue::PerSecond(r) => s.serialize_f64(*r),
            RateValue::Auto => s.serialize_str("auto"),
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
    /// The mode these settings describe; `profile_rate` applies when `rate` is not set (the
    /// profile's known limit, e.g. Genesys' 300 requests/minute).
    pub fn mode(&self, profile_rate: Option<f64>) -> RateMode {
        let rate = self.rate.or(profile_rate.map(RateValue::PerSecond));
        match rate {
            None | Some(RateValue::Auto) => RateMode::Discover { initial: self.initial_rate, max: self.max_rate },
            Some(RateValue::PerSecond(r)) if r <= 0.0 => RateMode::Unlimited,
            Some(RateValue::PerSecond(r)) => RateMode::Fixed(r),
        }
    }
}

/// Fleet-wide circuit breaker (per tenant): opens when, within the last `window_ms`, more than
/// `threshold` requests failed with a 5xx or no answer AND they were at least `failure_ratio` of
/// all answers; a healthy target's random errors never reach the ratio.
#[derive(Clone, Debug, Deserialize, Serialize)]
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
#[derive(Clone, Debug, Deserialize, Serialize)]
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
    /// Events kept in a run's audit stream (about; trimmed with `MAXLEN ~`).
    pub audit_len: u64,
    /// Webhook events kept in a run's outbox (about; trimmed with `MAXLEN ~`). Events trimmed
    /// before an endpoint had them are counted (`cxrelay webhooks status`, a metric), not lost
    /// silently.
    pub outbox_len: u64,
    /// Default failure-rate guard of new runs: a run pauses itself when more than this percent
    /// of its last `failure_window` finished items failed (`None`: no guard).
    pub pause_on_failure_rate: Option<f64>,
    /// Finished items the failure-rate guard looks at.
    pub failure_window: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            namespace: "cxr".into(),
            retention_secs: 7 * 24 * 3600,
            history_len: 10,
            loading_ttl_secs: 24 * 3600,
            audit_len: 10_000,
            outbox_len: 100_000,
            pause_on_failure_rate: None,
            failure_window: 200,
        }
    }
}

/// Everything configurable, from `cxrelay.toml` plus environment overrides.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
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
    /// Monitoring webhook endpoints (`[[webhooks]]`).
    pub webhooks: Vec<crate::webhook::WebhookEndpoint>,
    /// The HTTP API (`cxrelay serve`).
    pub serve: ServeSettings,
    /// CSV export executions.
    pub exports: ExportSettings,
}

/// The HTTP API.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Address `cxrelay serve` listens on.
    pub addr: String,
    /// API tokens with their roles, `token:role,token:role` (roles `ingest`, `read`, `operate`;
    /// a token without a role is `operate`). Never serialized.
    #[serde(skip_serializing)]
    pub api_tokens: Secret,
    /// Largest JSON request body (replay, controls) in bytes; run bodies are streamed.
    pub max_body_bytes: usize,
    /// Longest a request may take, ms (streamed run bodies excepted).
    pub request_timeout_ms: u64,
    /// Mark the dashboard's session cookie `Secure` (sent over HTTPS only): set it when the
    /// dashboard is reached over TLS (a TLS-terminating ingress or proxy in front of serve).
    pub secure_cookies: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            api_tokens: Secret::default(),
            max_body_bytes: 1 << 20,
            request_timeout_ms: 30_000,
            secure_cookies: false,
        }
    }
}

/// The webhook endpoint given by environment variables, if `CXRELAY_WEBHOOK_URL` is set (its
/// secret from `CXRELAY_WEBHOOK_SECRET`, its events from `CXRELAY_WEBHOOK_EVENTS`, comma-separated).
pub const WEBHOOK_ENV: [&str; 3] = ["CXRELAY_WEBHOOK_URL", "CXRELAY_WEBHOOK_SECRET", "CXRELAY_WEBHOOK_EVENTS"];

/// `rate_limit.rate`: requests per second, or `"auto"` (like absent: discover the limit).
fn rate_or_auto<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RateValue>, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    struct Rate;
    impl<'de> Visitor<'de> for Rate {
        type Value = Option<RateValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("requests per second (0 = no limit) or \"auto\"")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_f64(self)
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(RateValue::PerSecond(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(RateValue::PerSecond(v as f64)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(RateValue::PerSecond(v as f64)))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "auto" => Ok(Some(RateValue::Auto)),
                _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_option(Rate)
}

/// An environment variable that overrides one setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable, e.g. `CXRELAY_LEASE_MS`.
    pub name: &'static str,
    /// Dotted key of the setting it overrides, e.g. `worker.lease_ms`.
    pub key: &'static str,
    /// For a number, a boolean or a choice: what the value must be, as an error's reason
    /// (`expected milliseconds`); such a value is trimmed first. `None` for text, taken as is.
    pub expected: Option<&'static str>,
    /// What the setting is.
    pub description: &'static str,
}

impl EnvVar {
    const fn text(name: &'static str, key: &'static str, description: &'static str) -> Self {
        Self { name, key, expected: None, description }
    }

    const fn typed(name: &'static str, key: &'static str, expected: &'static str, description: &'static str) -> Self {
        Self { name, key, expected: Some(expected), description }
    }

    /// The value the setting gets from the variable's value `raw`.
    fn value<'v>(&self, raw: &'v str) -> &'v str {
        if self.expected.is_some() {
            raw.trim()
        } else {
            raw
        }
    }
}

const MS: &str = "expected milliseconds";
const SECS: &str = "expected seconds";
const BOOL: &str = "expected true or false";
const COUNT: &str = "expected a whole number";
const COUNT_1: &str = "expected a whole number ≥ 1";
const PER_SEC: &str = "expected requests per second";

/// Every environment variable and the setting it overrides: one per setting (each leaf of
/// [`Settings`]) except the `rate_limit.actions` map, which only the settings file sets
/// (`[rate_limit.actions]`). Names follow no mechanical rule (`CXRELAY_LEASE_MS` is
/// `worker.lease_ms`, `CXRELAY_RATE` is `rate_limit.rate`), hence this table; the README's
/// table of variables is checked against it (`tests/settings_table.rs`).
const ENV: &[EnvVar] = &[
    EnvVar::text("REDIS_URL", "redis_url", "Redis URL; several comma-separated node URLs select Redis Cluster"),
    EnvVar::typed("CXRELAY_REDIS_CLUSTER", "redis_cluster", BOOL, "treat a single Redis URL as a seed node of a Redis Cluster"),
    EnvVar::text("CXRELAY_REDIS_CA_CERT", "redis_ca_cert", "PEM file of the CA that signed the Redis server's TLS certificate"),
    EnvVar::typed(
        "CXRELAY_PROFILE",
        "target.profile",
        "expected seed, cxone, genesys or custom",
        "which API the target speaks; sets the defaults below",
    ),
    EnvVar::text("CXRELAY_API_BASE", "target.api_base", "base URL of the API (cxone: discovered when unset)"),
    EnvVar::text("CXRELAY_REGION", "target.region", "Genesys Cloud region host, e.g. mypurecloud.com"),
    EnvVar::text("CXRELAY_ISSUER", "target.issuer", "CXone OpenID issuer (default https://cxone.niceincontact.com)"),
    EnvVar::text("CXRELAY_TOKEN_URL", "target.token_url", "token endpoint (default per profile; seed: {api_base}/oauth/token)"),
    EnvVar::typed(
        "CXRELAY_AUTH",
        "target.auth",
        "expected client_credentials_form, client_credentials_json, static_bearer or cxone_access_key",
        "how the worker obtains its bearer token (default per profile)",
    ),
    EnvVar::text("CXRELAY_CLIENT_ID", "target.client_id", "OAuth client id"),
    EnvVar::text("CXRELAY_CLIENT_SECRET", "target.client_secret", "OAuth client secret"),
    EnvVar::text("CXRELAY_ACCESS_KEY_ID", "target.access_key_id", "CXone access key id"),
    EnvVar::text("CXRELAY_ACCESS_KEY_SECRET", "target.access_key_secret", "CXone access key secret"),
    EnvVar::text("CXRELAY_TOKEN", "target.token", "bearer token for static_bearer"),
    EnvVar::text("CXRELAY_SERVE_ADDR", "serve.addr", "address cxrelay serve listens on"),
    EnvVar::text("CXRELAY_API_TOKENS", "serve.api_tokens", "API tokens with roles: token:role,token:role"),
    EnvVar::typed("CXRELAY_SERVE_MAX_BODY_BYTES", "serve.max_body_bytes", COUNT_1, "largest JSON request body (run bodies are streamed)"),
    EnvVar::typed("CXRELAY_SERVE_TIMEOUT_MS", "serve.request_timeout_ms", MS, "longest a request may take (run bodies excepted)"),
    EnvVar::typed("CXRELAY_SERVE_SECURE_COOKIES", "serve.secure_cookies", BOOL, "mark the dashboard's session cookie Secure (HTTPS only)"),
    EnvVar::text("CXRELAY_SCOPE", "target.scope", "scopes requested with client credentials"),
    EnvVar::text("CXRELAY_EXECUTE_PATH", "target.execute_path", "execute path; {action} is replaced by the action id"),
    EnvVar::typed("CXRELAY_BODY", "target.body", "expected envelope or flat", "how the request body wraps an item (default per profile)"),
    EnvVar::typed("CXRELAY_MAX_PAYLOAD_BYTES", "target.max_payload_bytes", COUNT_1, "largest request body (default 256 KB)"),
    EnvVar::text("CXRELAY_RETRY_AFTER_STATUSES", "target.retry_after_statuses", "statuses whose Retry-After is believed, e.g. 429,503"),
    EnvVar::typed("CXRELAY_REQUEST_TIMEOUT_MS", "target.request_timeout_ms", MS, "per-request timeout"),
    EnvVar::text("CXRELAY_TENANT", "target.tenant", "the tenant of runs and workers"),
    EnvVar::typed("CXRELAY_CONCURRENCY", "worker.concurrency", COUNT_1, "items in flight per process"),
    EnvVar::typed("CXRELAY_WORKER_THREADS", "worker.threads", COUNT_1, "threads of a worker process (1 = one thread, the cheapest per item)"),
    EnvVar::text("CXRELAY_METRICS_ADDR", "worker.metrics_addr", "address of the worker's /metrics, /healthz and /readyz"),
    EnvVar::text("CXRELAY_AUDIT_LOG", "worker.audit_log", "per-attempt audit log, one JSON object per line: stdout or a file path"),
    EnvVar::typed("CXRELAY_LEASE_MS", "worker.lease_ms", MS, "lease before another worker takes an item over"),
    EnvVar::typed("CXRELAY_SHUTDOWN_TIMEOUT_MS", "worker.shutdown_timeout_ms", MS, "on SIGTERM/SIGINT, how long in-flight items may take"),
    EnvVar::typed("CXRELAY_MAX_REDELIVERIES", "worker.max_redeliveries", COUNT, "take-overs before an item fails as poison"),
    EnvVar::typed("CXRELAY_MAX_ATTEMPTS", "retry.max_attempts", COUNT_1, "attempts in all (429s excluded)"),
    EnvVar::typed("CXRELAY_BACKOFF_BASE_MS", "retry.backoff_base_ms", MS, "first backoff"),
    EnvVar::typed("CXRELAY_BACKOFF_CAP_MS", "retry.backoff_cap_ms", MS, "largest backoff"),
    EnvVar::typed("CXRELAY_MAX_THROTTLED", "retry.max_throttled", COUNT_1, "429 answers before an item fails"),
    EnvVar::typed(
        "CXRELAY_RATE",
        "rate_limit.rate",
        "expected requests per second, e.g. 500 (0 = no limit, auto = discover)",
        "requests per second for the tenant's fleet",
    ),
    EnvVar::typed("CXRELAY_INITIAL_RATE", "rate_limit.initial_rate", PER_SEC, "where discovery starts"),
    EnvVar::typed("CXRELAY_MAX_RATE", "rate_limit.max_rate", PER_SEC, "discovery never goes above this"),
    EnvVar::typed("CXRELAY_BURST", "rate_limit.burst", "expected a whole number of requests", "requests allowed above the rate at once"),
    EnvVar::typed("CXRELAY_ADAPTIVE", "rate_limit.adaptive", BOOL, "lower a configured rate on 429s"),
    EnvVar::typed("CXRELAY_MAX_WAIT_MS", "rate_limit.max_wait_ms", MS, "longest wait for a send slot before an item is deferred"),
    EnvVar::typed("CXRELAY_PAUSE_MS", "rate_limit.pause_ms", MS, "fleet-wide pause after a 429 without Retry-After"),
    EnvVar::typed("CXRELAY_BREAKER_THRESHOLD", "breaker.threshold", COUNT, "failures in the window above which the breaker may open"),
    EnvVar::typed(
        "CXRELAY_BREAKER_FAILURE_RATIO",
        "breaker.failure_ratio",
        "expected a number between 0 and 1",
        "share of failures among answers needed to open",
    ),
    EnvVar::typed("CXRELAY_BREAKER_WINDOW_MS", "breaker.window_ms", MS, "the breaker's sliding window"),
    EnvVar::typed("CXRELAY_BREAKER_COOLDOWN_MS", "breaker.cooldown_ms", MS, "open time before a probe"),
    EnvVar::text("CXRELAY_NAMESPACE", "queue.namespace", "prefix of every Redis key"),
    EnvVar::typed("CXRELAY_RETENTION_SECS", "queue.retention_secs", SECS, "a finished run's data is deleted after this"),
    EnvVar::typed("CXRELAY_HISTORY_LEN", "queue.history_len", COUNT_1, "attempts kept in an item's history"),
    EnvVar::typed("CXRELAY_LOADING_TTL_SECS", "queue.loading_ttl_secs", SECS, "a run still loading expires after this without a new chunk"),
    EnvVar::typed("CXRELAY_AUDIT_LEN", "queue.audit_len", COUNT_1, "events kept in a run's audit stream"),
    EnvVar::typed("CXRELAY_OUTBOX_LEN", "queue.outbox_len", COUNT_1, "webhook events kept in a run's outbox"),
    EnvVar::typed(
        "CXRELAY_PAUSE_ON_FAILURE_RATE",
        "queue.pause_on_failure_rate",
        "expected a percentage, e.g. 20",
        "new runs pause themselves when more than this percent of recent items failed",
    ),
    EnvVar::typed("CXRELAY_FAILURE_WINDOW", "queue.failure_window", COUNT_1, "finished items the failure-rate guard looks at"),
    EnvVar::text("CXRELAY_EXPORT_SUBMIT_PATH", "exports.submit_path", "export submit path; {dataAction} is replaced"),
    EnvVar::typed("CXRELAY_EXPORT_COMPLETION", "exports.completion", "expected callback or poll", "how an export's completion is learned"),
    EnvVar::text("CXRELAY_EXPORT_STATUS_PATH", "exports.status_path", "export status path for polling; {execution} is replaced"),
    EnvVar::text("CXRELAY_EXPORT_EXECUTION_ID_FIELD", "exports.execution_id_field", "JSON pointer to the execution id in the submit answer"),
    EnvVar::text("CXRELAY_EXPORT_STATUS_FIELD", "exports.status_field", "JSON pointer to the state in a status answer"),
    EnvVar::text("CXRELAY_EXPORT_ROWS_FIELD", "exports.rows_field", "JSON pointer to the rows exported in a status answer"),
    EnvVar::text("CXRELAY_EXPORT_START_FIELD", "exports.start_field", "JSON pointer to the start time in a status answer"),
    EnvVar::text("CXRELAY_EXPORT_END_FIELD", "exports.end_field", "JSON pointer to the end time in a status answer"),
    EnvVar::text("CXRELAY_EXPORT_COMPLETED_STATES", "exports.completed_states", "states meaning completed, comma-separated"),
    EnvVar::text("CXRELAY_EXPORT_FAILED_STATES", "exports.failed_states", "states meaning failed, comma-separated"),
    EnvVar::typed("CXRELAY_EXPORT_POLL_INTERVAL_MS", "exports.poll_interval_ms", MS, "how often a polled export is asked about"),
    EnvVar::typed("CXRELAY_EXPORT_DEADLINE_SECS", "exports.deadline_secs", SECS, "an export not completed this long after submission is overdue"),
    EnvVar::typed("CXRELAY_EXPORT_MIN_SPACING_MS", "exports.min_spacing_ms", MS, "least time between two submissions for one data action"),
    EnvVar::text("CXRELAY_EXPORT_CALLBACK_URL", "exports.callback_url", "callback URL sent when an export names none"),
    EnvVar::text(
        "CXRELAY_EXPORT_CALLBACK_SECRET",
        "exports.callback_secret",
        "Standard Webhooks secret (whsec_...) export callbacks are signed with",
    ),
    EnvVar::text(
        "CXRELAY_EXPORT_CALLBACK_PATH_SECRET",
        "exports.callback_path_secret",
        "opt-in secret of /v1/callbacks/export/{secret} for targets that cannot sign",
    ),
    EnvVar::typed(
        "CXRELAY_EXPORT_CALLBACK_TOLERANCE_SECS",
        "exports.callback_tolerance_secs",
        SECS,
        "signed callbacks further than this from now are stale",
    ),
];

/// Every environment variable that overrides a setting (all settings but `rate_limit.actions`).
pub fn env_vars() -> &'static [EnvVar] {
    ENV
}

/// The error of an override that did not fit its setting: names the variable, its value and
/// what was expected.
fn env_error(e: figment::Error, set: &[(&'static EnvVar, String)]) -> ConfigError {
    let culprit = e.clone().into_iter().find_map(|e| {
        let key = e.path.join(".");
        set.iter().find(|(var, _)| var.key == key)
    });
    match culprit {
        Some((var, value)) => ConfigError::Env { var: var.name, value: value.clone(), reason: var.expected.unwrap_or("expected text") },
        // Unreachable: only the variables' values can fail to fit.
        None => ConfigError::Invalid { key: "environment", reason: e.to_string() },
    }
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

    /// Applies environment overrides (the variables of [`env_vars`] that `env` has), then
    /// validates.
    ///
    /// The settings, then each variable's value at its key, are layered with figment and read
    /// back, numbers and booleans from their text (`true`/`false`, also `yes`/`no`, `on`/`off`,
    /// `1`/`0`).
    pub fn with_env(self, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set: Vec<(&'static EnvVar, String)> = ENV.iter().filter_map(|var| env(var.name).map(|value| (var, value))).collect();
        // Secrets are never serialized: they join as layers of their own.
        let secrets = [
            ("target.client_secret", &self.target.client_secret),
            ("target.token", &self.target.token),
            ("target.access_key_secret", &self.target.access_key_secret),
            ("serve.api_tokens", &self.serve.api_tokens),
            ("exports.callback_secret", &self.exports.callback_secret),
            ("exports.callback_path_secret", &self.exports.callback_path_secret),
        ];
        let base = Figment::from(Serialized::defaults(&self));
        let base = secrets.into_iter().fold(base, |f, (key, secret)| f.merge(Serialized::default(key, secret.expose())));
        let figment = set.iter().fold(base, |f, (var, value)| f.merge(Serialized::default(var.key, var.value(value))));
        let mut settings: Settings = figment.extract_lossy().map_err(|e| env_error(e, &set))?;
        // Webhook secrets are never serialized either: the endpoints come back as they were.
        settings.webhooks = self.webhooks;
        if let Some(url) = env(WEBHOOK_ENV[0]).filter(|u| !u.trim().is_empty()) {
            settings.webhooks.push(crate::webhook::WebhookEndpoint {
                url: url.trim().to_owned(),
                secret: crate::Secret::new(env(WEBHOOK_ENV[1]).unwrap_or_default().trim()),
                events: env(WEBHOOK_ENV[2])
                    .map(|e| e.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
                    .unwrap_or_else(crate::webhook::default_events),
            });
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.to_owned() });
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency", "must be at least 1");
        }
        for w in &self.webhooks {
            w.check().map_err(|reason| ConfigError::Invalid { key: "webhooks", reason })?;
        }
        if !(1..=1024).contains(&self.worker.threads) {
            return bad("worker.threads", "must be between 1 and 1024");
        }
        if self.worker.lease_ms < 500 {
            return bad("worker.lease_ms", "must be at least 500 ms");
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts", "must be at least 1");
        }
        if let Some(RateValue::PerSecond(r)) = self.rate_limit.rate {
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
        if let Some(r) = self.queue.pause_on_failure_rate {
            if !(r > 0.0 && r <= 100.0) {
                return bad("queue.pause_on_failure_rate", "must be a percentage above 0 and at most 100");
            }
        }
        if !(1..=10_000).contains(&self.queue.failure_window) {
            return bad("queue.failure_window", "must be between 1 and 10000");
        }
        if self.queue.outbox_len < 100 {
            return bad("queue.outbox_len", "must be at least 100");
        }
        if self.queue.audit_len == 0 {
            return bad("queue.audit_len", "must be at least 1");
        }
        if !(1..=1000).contains(&self.queue.history_len) {
            return bad("queue.history_len", "must be between 1 and 1000");
        }
        if self.exports.poll_interval_ms < 100 {
            return bad("exports.poll_interval_ms", "must be at least 100 ms");
        }
        if self.exports.deadline_secs == 0 {
            return bad("exports.deadline_secs", "must be at least 1 second");
        }
        if self.exports.callback_tolerance_secs == 0 {
            return bad("exports.callback_tolerance_secs", "must be at least 1 second");
        }
        if !self.exports.callback_secret.is_empty() {
            crate::webhook::signing_key(&self.exports.callback_secret)
                .map_err(|reason| ConfigError::Invalid { key: "exports.callback_secret", reason })?;
        }
        if !self.exports.callback_path_secret.is_empty() && self.exports.callback_path_secret.expose().len() < 16 {
            return bad("exports.callback_path_secret", "must be at least 16 characters (it is the only credential of the callback URL)");
        }
        // The profile's paths, fields and headers are checked here too; credentials only by
        // whoever needs them (the worker at start), so `cxrelay report` works without them.
        match crate::profile::resolve(self) {
            Err(ConfigError::Invalid { reason, .. }) if reason.starts_with(crate::profile::REQUIRED) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
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
        assert_eq!(s.target.api_base.as_deref(), Some("http://x"));
        assert_eq!(s.rate_limit.rate, Some(RateValue::PerSecond(500.0)));
        assert_eq!(s.rate_limit.burst, 2);
        assert!(!s.rate_limit.adaptive);
        assert_eq!(s.worker.lease_ms, 3000);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn rate_defaults_to_discovery() {
        let s = Settings::default().with_env(env(&[])).unwrap();
        assert!(matches!(s.rate_limit.mode(None), RateMode::Discover { .. }));
        let s = Settings::default().with_env(env(&[("CXRELAY_RATE", "0")])).unwrap();
        assert_eq!(s.rate_limit.mode(None), RateMode::Unlimited);
        let s = Settings::default().with_env(env(&[("CXRELAY_RATE", "auto")])).unwrap();
        assert!(matches!(s.rate_limit.mode(None), RateMode::Discover { .. }));
        let s = Settings::from_toml("[rate_limit]\nrate = 200\n[rate_limit.actions]\nslow = 20\n").unwrap();
        assert_eq!(s.rate_limit.mode(None), RateMode::Fixed(200.0));
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

    /// Dotted keys of the leaves of `v` (an empty map, like `rate_limit.actions`, is a leaf).
    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    leaves(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }

    /// Settings that are secrets: never serialized, settings all the same.
    const SECRET_KEYS: [&str; 6] = [
        "target.client_secret",
        "target.token",
        "target.access_key_secret",
        "serve.api_tokens",
        "exports.callback_secret",
        "exports.callback_path_secret",
    ];

    fn secret_value<'a>(s: &'a Settings, key: &str) -> Option<&'a str> {
        Some(match key {
            "target.client_secret" => s.target.client_secret.expose(),
            "target.token" => s.target.token.expose(),
            "target.access_key_secret" => s.target.access_key_secret.expose(),
            "serve.api_tokens" => s.serve.api_tokens.expose(),
            "exports.callback_secret" => s.exports.callback_secret.expose(),
            "exports.callback_path_secret" => s.exports.callback_path_secret.expose(),
            _ => return None,
        })
    }

    #[test]
    fn every_setting_but_the_actions_map_has_one_variable() {
        let mut keys = Vec::new();
        leaves("", &serde_json::to_value(Settings::default()).unwrap(), &mut keys);
        // Secrets are not serialized; they are settings all the same.
        keys.extend(SECRET_KEYS.iter().map(|k| (*k).to_owned()));
        // Maps and lists of tables are set in the file only.
        keys.retain(|k| k != "rate_limit.actions" && k != "webhooks" && k != "target.headers");
        keys.sort();
        let mut table: Vec<String> = env_vars().iter().map(|v| v.key.to_owned()).collect();
        table.sort();
        assert_eq!(table, keys);
        let mut names: Vec<&str> = env_vars().iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), env_vars().len(), "a variable is listed twice");
    }

    #[test]
    fn every_variable_reaches_its_setting() {
        // One valid value per variable, different from the default.
        let values = [
            ("REDIS_URL", "redis://r:1"),
            ("CXRELAY_REDIS_CLUSTER", "true"),
            ("CXRELAY_REDIS_CA_CERT", "/ca.pem"),
            ("CXRELAY_API_BASE", "http://api"),
            ("CXRELAY_TOKEN_URL", "http://auth/token"),
            ("CXRELAY_AUTH", "static_bearer"),
            ("CXRELAY_CLIENT_ID", "id-1"),
            ("CXRELAY_CLIENT_SECRET", "s3cret"),
            ("CXRELAY_TOKEN", "t0ken"),
            ("CXRELAY_SCOPE", "a b"),
            ("CXRELAY_EXECUTE_PATH", "/x/{action}"),
            ("CXRELAY_BODY", "flat"),
            ("CXRELAY_REQUEST_TIMEOUT_MS", "1234"),
            ("CXRELAY_TENANT", "t9"),
            ("CXRELAY_CONCURRENCY", "7"),
            ("CXRELAY_WORKER_THREADS", "3"),
            ("CXRELAY_AUDIT_LOG", "/var/log/cxrelay-audit.jsonl"),
            ("CXRELAY_METRICS_ADDR", "127.0.0.1:9100"),
            ("CXRELAY_SERVE_ADDR", "0.0.0.0:9000"),
            ("CXRELAY_API_TOKENS", "t1:read,t2"),
            ("CXRELAY_SERVE_MAX_BODY_BYTES", "4096"),
            ("CXRELAY_SERVE_TIMEOUT_MS", "5000"),
            ("CXRELAY_SERVE_SECURE_COOKIES", "true"),
            ("CXRELAY_LEASE_MS", "2500"),
            ("CXRELAY_SHUTDOWN_TIMEOUT_MS", "4500"),
            ("CXRELAY_MAX_REDELIVERIES", "2"),
            ("CXRELAY_MAX_ATTEMPTS", "3"),
            ("CXRELAY_BACKOFF_BASE_MS", "40"),
            ("CXRELAY_BACKOFF_CAP_MS", "900"),
            ("CXRELAY_MAX_THROTTLED", "11"),
            ("CXRELAY_RATE", "250.5"),
            ("CXRELAY_INITIAL_RATE", "20"),
            ("CXRELAY_MAX_RATE", "300"),
            ("CXRELAY_BURST", "4"),
            ("CXRELAY_ADAPTIVE", "false"),
            ("CXRELAY_MAX_WAIT_MS", "700"),
            ("CXRELAY_PAUSE_MS", "1500"),
            ("CXRELAY_BREAKER_THRESHOLD", "9"),
            ("CXRELAY_BREAKER_FAILURE_RATIO", "0.75"),
            ("CXRELAY_BREAKER_WINDOW_MS", "5000"),
            ("CXRELAY_BREAKER_COOLDOWN_MS", "600"),
            ("CXRELAY_NAMESPACE", "ns2"),
            ("CXRELAY_RETENTION_SECS", "60"),
            ("CXRELAY_HISTORY_LEN", "3"),
            ("CXRELAY_LOADING_TTL_SECS", "30"),
            ("CXRELAY_AUDIT_LEN", "500"),
            ("CXRELAY_OUTBOX_LEN", "700"),
            ("CXRELAY_PAUSE_ON_FAILURE_RATE", "12.5"),
            ("CXRELAY_FAILURE_WINDOW", "50"),
            ("CXRELAY_PROFILE", "custom"),
            ("CXRELAY_REGION", "mypurecloud.de"),
            ("CXRELAY_ISSUER", "https://issuer.example"),
            ("CXRELAY_ACCESS_KEY_ID", "AK1"),
            ("CXRELAY_ACCESS_KEY_SECRET", "aks=="),
            ("CXRELAY_MAX_PAYLOAD_BYTES", "1000"),
            ("CXRELAY_RETRY_AFTER_STATUSES", "429,502"),
            ("CXRELAY_EXPORT_SUBMIT_PATH", "/e/{dataAction}"),
            ("CXRELAY_EXPORT_COMPLETION", "poll"),
            ("CXRELAY_EXPORT_STATUS_PATH", "/s/{execution}"),
            ("CXRELAY_EXPORT_EXECUTION_ID_FIELD", "/id"),
            ("CXRELAY_EXPORT_STATUS_FIELD", "/st"),
            ("CXRELAY_EXPORT_ROWS_FIELD", "/rows"),
            ("CXRELAY_EXPORT_START_FIELD", "/start"),
            ("CXRELAY_EXPORT_END_FIELD", "/end"),
            ("CXRELAY_EXPORT_COMPLETED_STATES", "done,ok"),
            ("CXRELAY_EXPORT_FAILED_STATES", "bad"),
            ("CXRELAY_EXPORT_POLL_INTERVAL_MS", "250"),
            ("CXRELAY_EXPORT_DEADLINE_SECS", "60"),
            ("CXRELAY_EXPORT_MIN_SPACING_MS", "3000"),
            ("CXRELAY_EXPORT_CALLBACK_URL", "http://cb.example/x"),
            ("CXRELAY_EXPORT_CALLBACK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("CXRELAY_EXPORT_CALLBACK_PATH_SECRET", "0123456789abcdef0"),
            ("CXRELAY_EXPORT_CALLBACK_TOLERANCE_SECS", "120"),
        ];
        let mut listed: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
        let mut names: Vec<&str> = env_vars().iter().map(|v| v.name).collect();
        listed.sort();
        names.sort();
        assert_eq!(listed, names, "this test must give every variable a value");

        let s = Settings::default().with_env(env(&values)).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        for var in env_vars() {
            let (_, raw) = values.iter().find(|(k, _)| *k == var.name).unwrap();
            let got = match secret_value(&s, var.key) {
                Some(secret) => secret.to_owned(),
                None => match var.key.split('.').fold(&json, |v, k| &v[k]) {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            let want = match *raw {
                "true" | "false" => raw.to_string(),
                _ => raw.parse::<f64>().map_or(raw.to_string(), |n| serde_json::json!(n).to_string()),
            };
            let got = got.parse::<f64>().map_or(got.clone(), |n| serde_json::json!(n).to_string());
            assert_eq!(got, want, "{} -> {}", var.name, var.key);
        }
    }

    #[test]
    fn webhook_endpoints_from_the_file_and_the_environment() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let file = format!("[[webhooks]]\nurl = \"https://a.example/h\"\nsecret = \"{secret}\"\nevents = [\"run.completed\"]\n");
        let s = Settings::from_toml(&file)
            .unwrap()
            .with_env(env(&[
                ("CXRELAY_WEBHOOK_URL", "http://b.example/h"),
                ("CXRELAY_WEBHOOK_SECRET", secret),
                ("CXRELAY_WEBHOOK_EVENTS", "item.failed, run.paused"),
            ]))
            .unwrap();
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!(s.webhooks[0].secret.expose(), secret, "a secret from the file survives the environment layer");
        assert_eq!(s.webhooks[1].events, vec!["item.failed", "run.paused"]);
        assert!(!serde_json::to_string(&s).unwrap().contains(secret), "never serialized");
        let e =
            Settings::default().with_env(env(&[("CXRELAY_WEBHOOK_URL", "http://b/h"), ("CXRELAY_WEBHOOK_SECRET", "oops")])).unwrap_err().to_string();
        assert!(e.contains("whsec_") && !e.contains("oops"), "{e}");
    }

    #[test]
    fn typed_values_are_trimmed_text_is_verbatim() {
        let s = Settings::default()
            .with_env(env(&[
                ("CXRELAY_LEASE_MS", " 3000\n"),
                ("CXRELAY_ADAPTIVE", " false "),
                ("CXRELAY_RATE", " auto "),
                ("CXRELAY_AUTH", "client_credentials_json "),
                ("CXRELAY_CLIENT_ID", " 123 "),
                ("CXRELAY_CLIENT_SECRET", "12345"),
                ("CXRELAY_NAMESPACE", "42"),
                ("REDIS_URL", ""),
            ]))
            .unwrap();
        assert_eq!(s.worker.lease_ms, 3000);
        assert!(!s.rate_limit.adaptive);
        assert_eq!(s.rate_limit.rate, Some(RateValue::Auto));
        assert_eq!(s.target.auth, Some(AuthMode::ClientCredentialsJson));
        assert_eq!(s.target.client_id, " 123 ");
        assert_eq!(s.target.client_secret.expose(), "12345");
        assert_eq!(s.queue.namespace, "42");
        assert_eq!(s.redis_url.as_deref(), Some(""));
    }

    #[test]
    fn bad_values_name_the_variable_value_and_form() {
        for (var, value, expected) in [
            ("CXRELAY_AUTH", "kerberos", "static_bearer"),
            ("CXRELAY_BODY", "xml", "envelope or flat"),
            ("CXRELAY_RATE", "fast", "auto = discover"),
            ("CXRELAY_ADAPTIVE", "maybe", "true or false"),
            ("CXRELAY_LEASE_MS", "-5", "milliseconds"),
            ("CXRELAY_MAX_ATTEMPTS", "2.5", "whole number"),
            ("CXRELAY_HISTORY_LEN", "99999999999", "whole number"),
            ("CXRELAY_REDIS_CLUSTER", "", "true or false"),
        ] {
            let e = Settings::default().with_env(env(&[(var, value)])).unwrap_err();
            assert!(matches!(e, ConfigError::Env { .. }), "{var}: {e:?}");
            let e = e.to_string();
            assert!(e.contains(var) && e.contains(&format!("{value:?}")) && e.contains(expected), "{e}");
        }
        // Ranges are still checked after the overrides, naming the key.
        let e = Settings::default().with_env(env(&[("CXRELAY_HISTORY_LEN", "0")])).unwrap_err().to_string();
        assert!(e.contains("queue.history_len"), "{e}");
        let e = Settings::default().with_env(env(&[("CXRELAY_BREAKER_FAILURE_RATIO", "1.5")])).unwrap_err().to_string();
        assert!(e.contains("breaker.failure_ratio"), "{e}");
        // A missing credential is the worker's error, not every command's.
        let s = Settings::default().with_env(env(&[("CXRELAY_AUTH", "static_bearer")])).unwrap();
        let e = crate::profile::resolve(&s).unwrap_err().to_string();
        assert!(e.contains("target.token") && e.contains("CXRELAY_TOKEN"), "{e}");
    }

    #[test]
    fn file_values_survive_unless_overridden() {
        let s = Settings::from_toml(
            "[target]\nclient_secret = \"from-file\"\ntoken = \"tok\"\nscope = \"s\"\n[rate_limit]\nrate = 10\n[rate_limit.actions]\nslow = 2.5\n",
        )
        .unwrap();
        let kept = s.clone().with_env(env(&[])).unwrap();
        assert_eq!((kept.target.client_secret.expose(), kept.target.token.expose()), ("from-file", "tok"));
        assert_eq!((kept.target.scope.as_deref(), kept.rate_limit.rate), (Some("s"), Some(RateValue::PerSecond(10.0))));
        assert_eq!(kept.rate_limit.actions.get("slow"), Some(&2.5));
        let s = s.with_env(env(&[("CXRELAY_CLIENT_SECRET", "from-env"), ("CXRELAY_RATE", "auto")])).unwrap();
        assert_eq!((s.target.client_secret.expose(), s.target.token.expose()), ("from-env", "tok"));
        assert_eq!(s.rate_limit.rate, Some(RateValue::Auto));
        // Secrets show in neither Debug nor serialized settings.
        let shown = format!("{s:?} {}", serde_json::to_string(&s).unwrap());
        assert!(!shown.contains("from-env") && !shown.contains("tok\""), "{shown}");
    }

    #[test]
    fn file_rate_may_say_auto() {
        assert_eq!(Settings::from_toml("[rate_limit]\nrate = \"auto\"\n").unwrap().rate_limit.rate, Some(RateValue::Auto));
        assert_eq!(Settings::from_toml("[rate_limit]\nrate = 0\n").unwrap().rate_limit.mode(None), RateMode::Unlimited);
        assert_eq!(Settings::from_toml("[rate_limit]\nrate = 2.5\n").unwrap().rate_limit.rate, Some(RateValue::PerSecond(2.5)));
        let e = Settings::from_toml("[rate_limit]\nrate = \"fast\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2, column 8") && e.contains("\"auto\""), "{e}");
    }
}
