//! `FleetLimits`: the Redis side of the fleet-wide rate budget and circuit breaker.
//!
//! One budget per (tenant, action) in `cxr:{rl:TENANT:ACTION}`, one breaker per target in
//! `cxr:{brk:TENANT}` with its event stream beside it. Every decision is one script call on the
//! Redis server clock, so all pods share one view.

use std::time::Duration;

use crate::conn::RedisConn;
use crate::scripts;
use crate::store::QueueError;

/// The answer of `acquire`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Wait this long, then send (when `reserved`); otherwise defer the item this long.
    pub wait: Duration,
    /// A slot was reserved.
    pub reserved: bool,
    /// Nothing reserved because the fleet is paused after a 429.
    pub paused: bool,
    /// The rate in force (requests/s × 1000), for logs and metrics.
    pub rate_milli: u64,
}

/// What the breaker says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerReply {
    /// `closed`/`probe`/`open` (check), `opened`/`reopened`/`counted` (failure), `closed`/`reset`/`noop` (success).
    pub verdict: String,
    /// How long to hold back (open).
    pub wait: Duration,
    /// Consecutive failures now recorded.
    pub failures: u64,
}

/// Breaker settings.
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// Consecutive failures above which it opens.
    pub threshold: u32,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

/// Handle on the fleet-wide limits of one tenant.
#[derive(Clone)]
pub struct FleetLimits {
    conn: RedisConn,
    tenant: String,
    breaker_key: String,
    events_key: String,
}

/// Key of the rate budget of `tenant` and `action`.
pub fn budget_key(tenant: &str, action: &str) -> String {
    format!("cxr:{{rl:{tenant}:{action}}}")
}

/// Key of the breaker events stream of `tenant`.
pub fn breaker_events_key(tenant: &str) -> String {
    format!("cxr:{{brk:{tenant}}}:events")
}

impl FleetLimits {
    /// Limits of `tenant` on `conn`.
    pub fn new(conn: RedisConn, tenant: &str) -> Self {
        Self {
            conn,
            tenant: tenant.to_owned(),
            breaker_key: format!("cxr:{{brk:{tenant}}}"),
            events_key: breaker_events_key(tenant),
        }
    }

    /// Reserves a send slot of `action`'s budget; `max_wait` bounds a reservation.
    pub async fn acquire(&self, action: &str, rate: f64, burst: u32, adaptive: bool, max_wait: Duration) -> Result<Reservation, QueueError> {
        let (wait, reserved, rate_milli): (u64, u8, u64) = scripts::ACQUIRE
            .key(budget_key(&self.tenant, action))
            .arg(rate)
            .arg(burst)
            .arg(u8::from(adaptive))
            .arg(max_wait.as_micros() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Reservation { wait: Duration::from_micros(wait), reserved: reserved == 1, paused: reserved == 2, rate_milli })
    }

    /// Records a 429 of `action`: pauses the fleet for `pause`; returns the remaining pause.
    pub async fn throttle(&self, action: &str, pause: Duration, adaptive: bool, rate: f64, burst: u32) -> Result<Duration, QueueError> {
        let (remaining, _cut): (u64, u8) = scripts::THROTTLE
            .key(budget_key(&self.tenant, action))
            .arg(pause.as_micros() as u64)
            .arg(u8::from(adaptive))
            .arg(rate)
            .arg(burst)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Duration::from_micros(remaining))
    }

    /// The remaining fleet-wide pause of `action`'s budget.
    pub async fn pause_remaining(&self, action: &str) -> Result<Duration, QueueError> {
        let us: u64 = scripts::PAUSE.key(budget_key(&self.tenant, action)).invoke_async(&mut self.conn.clone()).await?;
        Ok(Duration::from_micros(us))
    }

    /// Calls the breaker script in `mode` (`check`, `failure`, `success`).
    pub async fn breaker(&self, mode: &str, config: &BreakerConfig) -> Result<BreakerReply, QueueError> {
        let (verdict, wait, failures): (String, u64, u64) = scripts::BREAKER
            .key(&self.breaker_key)
            .key(&self.events_key)
            .arg(mode)
            .arg(config.threshold)
            .arg(config.cooldown.as_micros() as u64)
            .arg(config.cooldown.max(Duration::from_secs(1)).as_micros() as u64)
            .arg(&self.tenant)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(BreakerReply { verdict, wait: Duration::from_micros(wait), failures })
    }
}
