//! `FleetLimits`: the Redis side of the fleet-wide rate budget and circuit breaker.
//!
//! One budget per tenant in `NS:{rl:TENANT}` (every action of the tenant shares it, as real
//! tenants are limited), optional per-action sub-limits in `NS:{rl:TENANT:ACTION}`, one breaker
//! per tenant in `NS:{brk:TENANT}` with its event stream beside it. Every decision is one script
//! call on the Redis server clock, so all pods share one view.

use std::time::Duration;

use cxrelay_core::ratelimit;

use crate::conn::RedisConn;
use crate::keys::Keyspace;
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
    /// `closed`/`probe`/`open` (check); `opened`/`reopened`/`closed`/`inconclusive`/`open`/`counted` (report).
    pub verdict: String,
    /// How long to hold back (open).
    pub wait: Duration,
    /// Failures in the window now.
    pub failures: u64,
    /// Answers in the window now.
    pub answers: u64,
    /// The Redis clock when the verdict was reached (us): replies that cross in flight are
    /// ordered by it, as Redis runs one script at a time.
    pub at_us: u64,
}

/// What a half-open probe came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not a probe.
    None,
    /// The probe succeeded: the target is back.
    Success,
    /// The probe failed, and its item had not failed before: the target is still down.
    Failure,
    /// The probe failed, but its item had failed before, so the failure may be the item's own.
    Inconclusive,
}

impl ProbeResult {
    fn as_arg(self) -> &'static str {
        match self {
            ProbeResult::None => "",
            ProbeResult::Success => "success",
            ProbeResult::Failure => "failure",
            ProbeResult::Inconclusive => "inconclusive",
        }
    }
}

/// Breaker settings.
#[derive(Clone, Debug)]
pub struct BreakerConfig {
    /// Failures in the window above which it may open.
    pub threshold: u32,
    /// Share of failures among answers in the window needed to open.
    pub failure_ratio: f64,
    /// The sliding window (whole seconds).
    pub window: Duration,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

/// What the budget is asked to do (from the rate settings).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// The ceiling: configured rate, or in discovery the highest rate allowed.
    pub rate: f64,
    /// Burst above the rate.
    pub burst: u32,
    /// Lower the rate on 429s.
    pub adaptive: bool,
    /// Discover the limit (start at `initial`, grow until 429s).
    pub discover: bool,
    /// Where discovery starts.
    pub initial: f64,
}

/// Handle on the fleet-wide limits of one tenant.
#[derive(Clone)]
pub struct FleetLimits {
    conn: RedisConn,
    keys: Keyspace,
    tenant: String,
}

impl FleetLimits {
    /// Limits of `tenant` under `keys` on `conn`.
    pub fn new(conn: RedisConn, keys: Keyspace, tenant: &str) -> Self {
        Self { conn, keys, tenant: tenant.to_owned() }
    }

    /// The tenant budget's current rate and learned ceiling (requests/s), where set.
    pub async fn budget_state(&self) -> Result<(Option<f64>, Option<f64>), QueueError> {
        let (rate, ceiling): (Option<String>, Option<String>) =
            redis::cmd("HMGET").arg(self.keys.budget(&self.tenant, None)).arg("rate").arg("ceiling").query_async(&mut self.conn.clone()).await?;
        let num = |v: Option<String>| v.and_then(|s| s.parse::<f64>().ok()).filter(|r| r.is_finite() && *r > 0.0);
        Ok((num(rate), num(ceiling)))
    }

    /// Reserves a send slot of the tenant's budget (`action` = None) or of an action's
    /// sub-limit; `max_wait` bounds a reservation.
    pub async fn acquire(&self, action: Option<&str>, budget: &BudgetConfig, max_wait: Duration) -> Result<Reservation, QueueError> {
        let (wait, reserved, rate_milli): (u64, u8, u64) = scripts::ACQUIRE
            .key(self.keys.budget(&self.tenant, action))
            .arg(budget.rate)
            .arg(budget.burst)
            .arg(u8::from(budget.adaptive))
            .arg(max_wait.as_micros() as u64)
            .arg(u8::from(budget.discover))
            .arg(budget.initial)
            .arg(&ratelimit::acquire_rules()[..])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Reservation { wait: Duration::from_micros(wait), reserved: reserved == 1, paused: reserved == 2, rate_milli })
    }

    /// Records a 429: pauses the tenant's fleet for `pause` and lowers its rate; returns the
    /// remaining pause.
    pub async fn throttle(&self, pause: Duration, budget: &BudgetConfig) -> Result<Duration, QueueError> {
        let (remaining, _cut): (u64, u8) = scripts::THROTTLE
            .key(self.keys.budget(&self.tenant, None))
            .arg(pause.as_micros() as u64)
            .arg(u8::from(budget.adaptive))
            .arg(budget.rate)
            .arg(budget.burst)
            .arg(u8::from(budget.discover))
            .arg(&ratelimit::throttle_rules()[..])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Duration::from_micros(remaining))
    }

    /// The target stated its limit (`RateLimit-Policy`): a budget still discovering it cruises
    /// just under it from now on. Returns whether the hint was taken.
    pub async fn hint(&self, limit: f64, budget: &BudgetConfig) -> Result<bool, QueueError> {
        let taken: u8 = scripts::HINT
            .key(self.keys.budget(&self.tenant, None))
            .arg(limit)
            .arg(budget.rate)
            .arg(&ratelimit::hint_rules()[..])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(taken == 1)
    }

    /// The remaining fleet-wide pause of the tenant's budget.
    pub async fn pause_remaining(&self) -> Result<Duration, QueueError> {
        let us: u64 = scripts::PAUSE.key(self.keys.budget(&self.tenant, None)).invoke_async(&mut self.conn.clone()).await?;
        Ok(Duration::from_micros(us))
    }

    /// Asks the breaker whether to send (`check`).
    pub async fn breaker_check(&self, config: &BreakerConfig) -> Result<BreakerReply, QueueError> {
        self.breaker("check", config, 0, 0, ProbeResult::None).await
    }

    /// Reports `answers` answers of which `failures` were 5xx or no answer, and a probe's result.
    pub async fn breaker_report(&self, config: &BreakerConfig, answers: u64, failures: u64, probe: ProbeResult) -> Result<BreakerReply, QueueError> {
        self.breaker("report", config, answers, failures, probe).await
    }

    async fn breaker(&self, mode: &str, config: &BreakerConfig, answers: u64, failures: u64, probe: ProbeResult) -> Result<BreakerReply, QueueError> {
        let (verdict, wait, failures, answers, at_us): (String, u64, u64, u64, u64) = scripts::BREAKER
            .key(self.keys.breaker(&self.tenant))
            .key(self.keys.breaker_events(&self.tenant))
            .arg(mode)
            .arg(config.threshold)
            .arg((config.failure_ratio * 1000.0).round() as u64)
            .arg(config.window.as_secs().max(1))
            .arg(config.cooldown.as_micros() as u64)
            .arg(config.cooldown.max(Duration::from_secs(1)).as_micros() as u64)
            .arg(&self.tenant)
            .arg(answers)
            .arg(failures)
            .arg(probe.as_arg())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(BreakerReply { verdict, wait: Duration::from_micros(wait), failures, answers, at_us })
    }
}
