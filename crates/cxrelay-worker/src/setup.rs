//! Turning [`Settings`] into the typed configurations of the client and the queue backend.

use std::time::Duration;

use cxrelay_core::config::{AuthMode, RateMode, Settings};
use cxrelay_core::profile::Target;
use cxrelay_cxone::{AuthConfig, ClientConfig};
use cxrelay_queue::store::StoreOptions;
use cxrelay_queue::{BreakerConfig, BudgetConfig, RedisTarget, StreamConfig};

use crate::gate::GateConfig;

/// The HTTP client configuration for the target API (profile defaults already applied).
pub fn client_config(t: &Target) -> ClientConfig {
    let auth = match t.auth {
        AuthMode::ClientCredentialsForm => AuthConfig::ClientCredentialsForm {
            token_url: t.token_url.clone().unwrap_or_default(),
            client_id: t.client_id.clone(),
            client_secret: t.client_secret.clone(),
            scope: t.scope.clone(),
        },
        AuthMode::ClientCredentialsJson => AuthConfig::ClientCredentialsJson {
            token_url: t.token_url.clone().unwrap_or_default(),
            client_id: t.client_id.clone(),
            client_secret: t.client_secret.clone(),
            scope: t.scope.clone(),
        },
        AuthMode::StaticBearer => AuthConfig::StaticBearer { token: t.token.clone() },
        AuthMode::CxoneAccessKey => AuthConfig::CxoneAccessKey {
            issuer: t.issuer.clone().unwrap_or_default(),
            token_url: t.token_url.clone(),
            client_id: t.client_id.clone(),
            client_secret: t.client_secret.clone(),
            access_key_id: t.access_key_id.clone(),
            access_key_secret: t.access_key_secret.clone(),
            discover_api_base: t.api_base.is_none(),
        },
    };
    let mut config = ClientConfig::new(t.api_base.clone().unwrap_or_default(), auth);
    config.execute_path = t.execute_path.clone();
    config.headers = t.headers.clone();
    config.request_timeout = Duration::from_millis(t.request_timeout_ms);
    config
}

/// The queue backend configuration for a worker with `concurrency` items in flight.
pub fn stream_config(settings: &Settings) -> StreamConfig {
    let mut config = StreamConfig::new(RedisTarget::from_settings(settings), settings.worker.concurrency);
    config.store = StoreOptions::from_settings(settings);
    config.tenant = settings.target.tenant.clone();
    config.max_redeliveries = settings.worker.max_redeliveries;
    config.lease = Duration::from_millis(settings.worker.lease_ms);
    config.fetch_batch = settings.worker.concurrency.clamp(1, 100);
    config
}

/// The gate's rate-limit and breaker configuration (`target` gives the profile's rate).
pub fn gate_config(settings: &Settings, target: &Target) -> GateConfig {
    let r = &settings.rate_limit;
    let budget = match r.mode(target.default_rate) {
        RateMode::Unlimited => None,
        RateMode::Fixed(rate) => Some(BudgetConfig { rate, burst: r.burst, adaptive: r.adaptive, discover: false, initial: rate }),
        RateMode::Discover { initial, max } => Some(BudgetConfig { rate: max, burst: r.burst, adaptive: true, discover: true, initial }),
    };
    let b = &settings.breaker;
    GateConfig {
        budget,
        action_limits: r.actions.clone(),
        max_wait: Duration::from_millis(r.max_wait_ms),
        default_pause: Duration::from_millis(r.pause_ms),
        breaker: BreakerConfig {
            threshold: b.threshold,
            failure_ratio: b.failure_ratio,
            window: Duration::from_millis(b.window_ms),
            cooldown: Duration::from_millis(b.cooldown_ms),
        },
    }
}
