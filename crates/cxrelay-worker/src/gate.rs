//! `Gate`: may this item be sent now? The fleet-wide rate budget, the shared 429 pause and the
//! shared circuit breaker, as seen from one worker process.
//!
//! Decisions live in Redis (`FleetLimits`); this type keeps each process cheap on the hot path:
//! a local governor limiter stops a process calling the budget script faster than the budget
//! itself allows, and the breaker and pause states are cached for a short time (200 ms and
//! 100 ms), so with no rate limit and a healthy target an item costs no extra round trip.
//! Failures and 429s are reported at once, so the fleet learns of trouble from the first pod that
//! meets it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cxrelay_core::classify::is_breaker_failure;
use cxrelay_core::retry::parse_retry_after;
use cxrelay_cxone::Attempt;
use cxrelay_queue::{BreakerConfig, FleetLimits};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How long a cached breaker view is trusted.
const BREAKER_VIEW_TTL: Duration = Duration::from_millis(200);
/// How long a cached pause view is trusted (only used when no rate is configured).
const PAUSE_VIEW_TTL: Duration = Duration::from_millis(100);

/// Rate and breaker settings of the gate.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// Fleet-wide requests/s per action; 0 = no limit.
    pub rate: f64,
    /// Burst above the rate.
    pub burst: u32,
    /// Adaptive rate on 429s.
    pub adaptive: bool,
    /// Longest wait for a send slot inside a worker before the item is deferred instead.
    pub max_wait: Duration,
    /// Pause after a 429 without `Retry-After`.
    pub default_pause: Duration,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
}

/// The gate's answer for one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send now; `probe` when this request is the breaker's half-open probe.
    Send {
        /// The half-open probe.
        probe: bool,
    },
    /// Do not send; put the item back for this long (not an attempt).
    Defer(Duration, DeferReason),
}

/// Why an item was deferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeferReason {
    /// The circuit breaker is open.
    BreakerOpen,
    /// The fleet is paused after a 429.
    Paused,
    /// The next send slot is further away than the wait allowed in a worker.
    RateLimited,
    /// Redis could not be asked; never send without the budget.
    Unavailable,
}

impl DeferReason {
    /// Short text for the item's record.
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::BreakerOpen => "deferred: circuit breaker open",
            DeferReason::Paused => "deferred: fleet paused after a 429",
            DeferReason::RateLimited => "deferred: rate limit",
            DeferReason::Unavailable => "deferred: redis unavailable",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct BreakerView {
    /// `None` = closed; `Some(t)` = open until `t` (then someone probes).
    open_until: Option<Instant>,
    failures: u64,
    fetched: Instant,
}

/// The per-process view of the fleet's limits.
pub struct Gate {
    limits: FleetLimits,
    config: GateConfig,
    local: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    breaker: Mutex<BreakerView>,
    pauses: Mutex<HashMap<String, (Instant, Instant)>>,
}

fn jitter(d: Duration) -> Duration {
    d + Duration::from_millis(rand::random::<u64>() % 200)
}

impl Gate {
    /// A gate over `limits`.
    pub fn new(limits: FleetLimits, config: GateConfig) -> Self {
        let stale = Instant::now() - BREAKER_VIEW_TTL * 2;
        Self {
            limits,
            config,
            local: Mutex::default(),
            breaker: Mutex::new(BreakerView { open_until: None, failures: 0, fetched: stale }),
            pauses: Mutex::default(),
        }
    }

    fn local_limiter(&self, action: &str) -> Option<Arc<DefaultDirectRateLimiter>> {
        if self.config.rate <= 0.0 {
            return None;
        }
        let mut map = self.local.lock().expect("limiters");
        let limiter = map.entry(action.to_owned()).or_insert_with(|| {
            let per_sec = NonZeroU32::new(self.config.rate.ceil().max(1.0) as u32).expect("positive");
            let burst = NonZeroU32::new(self.config.burst.max(1)).expect("positive");
            Arc::new(RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)))
        });
        Some(limiter.clone())
    }

    /// Decides whether an item of `action` may be sent now (waiting briefly for its slot).
    pub async fn admit(&self, action: &str) -> Admission {
        let probe = match self.check_breaker().await {
            Ok(probe) => probe,
            Err(admission) => return admission,
        };
        if let Some(limiter) = self.local_limiter(action) {
            limiter.until_ready().await;
            let max_wait = self.config.max_wait;
            match self.limits.acquire(action, self.config.rate, self.config.burst, self.config.adaptive, max_wait).await {
                Ok(r) if r.reserved => {
                    if r.wait > Duration::from_millis(2) {
                        tokio::time::sleep(r.wait).await;
                        // A 429 elsewhere in the fleet may have paused the budget while this
                        // slot was waiting: the pause wins over an older reservation.
                        match self.limits.pause_remaining(action).await {
                            Ok(p) if !p.is_zero() => return Admission::Defer(jitter(p), DeferReason::Paused),
                            Ok(_) => {}
                            Err(_) => return Admission::Defer(jitter(Duration::from_millis(500)), DeferReason::Unavailable),
                        }
                    }
                }
                Ok(r) => {
                    let reason = if r.paused { DeferReason::Paused } else { DeferReason::RateLimited };
                    return Admission::Defer(jitter(r.wait), reason);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rate budget unavailable; deferring");
                    return Admission::Defer(jitter(Duration::from_millis(500)), DeferReason::Unavailable);
                }
            }
        } else if let Some(wait) = self.paused(action).await {
            return Admission::Defer(jitter(wait), DeferReason::Paused);
        }
        Admission::Send { probe }
    }

    /// `Ok(false)` send, `Ok(true)` send as the half-open probe, `Err(defer)` hold back.
    async fn check_breaker(&self) -> Result<bool, Admission> {
        let view = *self.breaker.lock().expect("breaker view");
        let now = Instant::now();
        match view.open_until {
            None if view.fetched.elapsed() < BREAKER_VIEW_TTL => return Ok(false),
            Some(until) if now < until => return Err(Admission::Defer(jitter(until - now), DeferReason::BreakerOpen)),
            _ => {}
        }
        match self.limits.breaker("check", &self.config.breaker).await {
            Ok(reply) => {
                let open_until = (reply.verdict == "open").then(|| Instant::now() + reply.wait);
                *self.breaker.lock().expect("breaker view") = BreakerView { open_until, failures: reply.failures, fetched: Instant::now() };
                match reply.verdict.as_str() {
                    "open" => Err(Admission::Defer(jitter(reply.wait), DeferReason::BreakerOpen)),
                    "probe" => {
                        tracing::info!(event = "breaker.probe", "circuit breaker half-open: sending one probe");
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "circuit breaker unavailable; deferring");
                Err(Admission::Defer(jitter(Duration::from_millis(500)), DeferReason::Unavailable))
            }
        }
    }

    /// With no rate configured, the fleet pause is read through a short-lived cache.
    async fn paused(&self, action: &str) -> Option<Duration> {
        let now = Instant::now();
        if let Some((until, fetched)) = self.pauses.lock().expect("pauses").get(action).copied() {
            if fetched.elapsed() < PAUSE_VIEW_TTL {
                return (until > now).then(|| until - now);
            }
        }
        let remaining = match self.limits.pause_remaining(action).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "pause state unavailable; deferring");
                return Some(Duration::from_millis(500));
            }
        };
        self.pauses.lock().expect("pauses").insert(action.to_owned(), (now + remaining, now));
        (!remaining.is_zero()).then_some(remaining)
    }

    /// Reports an attempt's answer: 429s pause the fleet; 5xx and transport failures count
    /// towards the breaker, any other answer resets it.
    pub async fn observe(&self, action: &str, attempt: &Attempt, probe: bool) {
        if attempt.auth_failed {
            return;
        }
        if attempt.status == Some(429) {
            let pause = attempt
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
                .unwrap_or(self.config.default_pause);
            match self.limits.throttle(action, pause, self.config.adaptive, self.config.rate, self.config.burst).await {
                Ok(remaining) => {
                    let now = Instant::now();
                    self.pauses.lock().expect("pauses").insert(action.to_owned(), (now + remaining, now));
                    tracing::info!(event = "ratelimit.paused", action, pause_ms = remaining.as_millis() as u64, "429: pausing the fleet");
                }
                Err(e) => tracing::warn!(error = %e, "could not record the 429 pause"),
            }
        }
        if attempt.status.is_none() && attempt.transport.is_none() {
            return; // refused locally: says nothing about the target
        }
        let failure = is_breaker_failure(attempt.status);
        let view = *self.breaker.lock().expect("breaker view");
        if !failure && !probe && view.failures == 0 && view.open_until.is_none() {
            return;
        }
        let mode = match (failure, probe) {
            (true, _) => "failure",
            (false, true) => "probe_success",
            (false, false) => "success",
        };
        match self.limits.breaker(mode, &self.config.breaker).await {
            Ok(reply) => {
                let now = Instant::now();
                let open_until = matches!(reply.verdict.as_str(), "opened" | "reopened" | "open").then(|| now + reply.wait);
                *self.breaker.lock().expect("breaker view") = BreakerView { open_until, failures: reply.failures, fetched: now };
                match reply.verdict.as_str() {
                    "opened" => tracing::warn!(
                        event = "breaker.opened",
                        failures = reply.failures,
                        cooldown_ms = reply.wait.as_millis() as u64,
                        "circuit breaker opened: all workers stop sending"
                    ),
                    "reopened" => tracing::warn!(event = "breaker.reopened", "half-open probe failed; circuit breaker open again"),
                    "closed" => tracing::info!(event = "breaker.closed", "circuit breaker closed: sending resumes"),
                    _ => {}
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not report to the circuit breaker"),
        }
    }
}
