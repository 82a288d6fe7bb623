//! `Gate`: may this item be sent now? The tenant's fleet-wide rate budget (configured or
//! discovered), the shared 429 pause and the shared circuit breaker, as seen from one worker
//! process.
//!
//! Decisions live in Redis (`FleetLimits`); this type keeps each process cheap on the hot path:
//! the breaker and pause states are cached for a short time (200 ms and 100 ms), and answers are
//! reported to the breaker in batches — at once for a failure or a probe, otherwise every
//! [`REPORT_EVERY`] or [`REPORT_BATCH`] answers — so a healthy target costs no round trip per
//! item, yet every answer is counted exactly once across the fleet.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cxrelay_core::classify::is_breaker_failure;
use cxrelay_core::ratelimit::parse_rate_policy;
use cxrelay_core::retry::parse_retry_after;
use cxrelay_cxone::Attempt;
use cxrelay_queue::{BreakerConfig, BreakerReply, BudgetConfig, FleetLimits, ProbeResult};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How long a cached breaker view is trusted.
const BREAKER_VIEW_TTL: Duration = Duration::from_millis(200);
/// How long a cached pause view is trusted (only used when no budget applies).
const PAUSE_VIEW_TTL: Duration = Duration::from_millis(100);
/// Answers are reported to the breaker at least this often while they come in.
pub const REPORT_EVERY: Duration = Duration::from_millis(250);
/// … or as soon as this many are waiting.
pub const REPORT_BATCH: u64 = 200;

/// Rate and breaker settings of the gate.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The tenant's budget; `None` = no limit (429s still pause the fleet).
    pub budget: Option<BudgetConfig>,
    /// Per-action sub-limits, requests per second.
    pub action_limits: BTreeMap<String, f64>,
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

/// A reply older than the view is still taken once the view is this old: after a Redis restart
/// or a clock step back, the server's stamps may stay behind the view's for a long time.
const CLOCK_STEP_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct BreakerView {
    /// `None` = closed; `Some(t)` = hold back until `t` (then ask the breaker again).
    open_until: Option<Instant>,
    fetched: Instant,
    /// The Redis clock of the verdict this view holds (us).
    at_us: u64,
}

impl BreakerView {
    /// The view after `reply`, received at `now`.
    ///
    /// Several tasks of one process ask the breaker at once, and their replies can arrive in
    /// another order than Redis gave them: a `counted` reached before the `opened` must not
    /// reopen this process's sends for a whole view lifetime, so the later verdict wins.
    fn after(self, reply: &BreakerReply, now: Instant) -> Self {
        if reply.at_us < self.at_us && now.duration_since(self.fetched) < CLOCK_STEP_GRACE {
            return self;
        }
        let open_until = match reply.verdict.as_str() {
            // Held back for the wait given: open until the cooldown ends; the probe's lease
            // while this process's own probe is out, so its other items do not go with it.
            "open" | "opened" | "reopened" | "probe" => Some(now + reply.wait),
            // Still half-open with no probe out: ask again before the next send.
            "inconclusive" => Some(now),
            _ => None,
        };
        Self { open_until, fetched: now, at_us: reply.at_us }
    }
}

/// Answers not reported to the breaker yet.
#[derive(Debug)]
struct Unreported {
    answers: u64,
    failures: u64,
    since: Instant,
}

/// The per-process view of the fleet's limits.
pub struct Gate {
    limits: FleetLimits,
    config: GateConfig,
    /// Keeps a process from calling the budget script faster than a fixed budget allows.
    local: Option<Arc<DefaultDirectRateLimiter>>,
    breaker: Mutex<BreakerView>,
    unreported: Mutex<Unreported>,
    pause: Mutex<Option<(Instant, Instant)>>,
    /// A limit the target stated was passed to the budget (once per process is enough).
    hinted: AtomicBool,
}

/// Spread added to a deferral, so deferred items do not all come back at once.
const DEFER_JITTER: Duration = Duration::from_millis(200);
/// Spread added to a pause waited out in the worker (see [`Gate::reserve`]).
const PAUSE_END_SPREAD: Duration = Duration::from_millis(5);

fn spread(max: Duration) -> Duration {
    Duration::from_micros(rand::random::<u64>() % (max.as_micros() as u64).max(1))
}

fn jitter(d: Duration) -> Duration {
    d + spread(DEFER_JITTER)
}

impl Gate {
    /// The fleet-wide limits (for the metrics).
    pub fn limits(&self) -> &FleetLimits {
        &self.limits
    }

    /// True while this process's view of the breaker is open (for the metrics).
    pub fn breaker_open(&self) -> bool {
        self.breaker.lock().expect("breaker view").open_until.is_some_and(|t| t > Instant::now())
    }

    /// A gate over `limits`.
    pub fn new(limits: FleetLimits, config: GateConfig) -> Self {
        let stale = Instant::now() - BREAKER_VIEW_TTL * 2;
        let local = config.budget.filter(|b| !b.discover).map(|b| {
            let per_sec = NonZeroU32::new(b.rate.ceil().max(1.0) as u32).expect("positive");
            let burst = NonZeroU32::new(b.burst.max(1)).expect("positive");
            Arc::new(RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)))
        });
        Self {
            limits,
            config,
            local,
            breaker: Mutex::new(BreakerView { open_until: None, fetched: stale, at_us: 0 }),
            unreported: Mutex::new(Unreported { answers: 0, failures: 0, since: Instant::now() }),
            pause: Mutex::default(),
            hinted: AtomicBool::new(false),
        }
    }

    /// Decides whether an item of `action` may be sent now (waiting briefly for its slot).
    pub async fn admit(&self, action: &str) -> Admission {
        let probe = match self.check_breaker().await {
            Ok(probe) => probe,
            Err(admission) => return admission,
        };
        if let Some(rate) = self.config.action_limits.get(action) {
            let sub = BudgetConfig { rate: *rate, burst: 1, adaptive: false, discover: false, initial: *rate };
            if let Err(defer) = self.reserve(Some(action), &sub).await {
                return defer;
            }
        }
        match self.config.budget {
            Some(budget) => {
                if let Some(limiter) = &self.local {
                    limiter.until_ready().await;
                }
                if let Err(defer) = self.reserve(None, &budget).await {
                    return defer;
                }
            }
            None => {
                if let Some(wait) = self.paused().await {
                    return Admission::Defer(jitter(wait), DeferReason::Paused);
                }
            }
        }
        Admission::Send { probe }
    }

    /// Reserves a slot of the tenant's budget (or of an action's sub-limit) and waits for it.
    ///
    /// A fleet pause no longer than `max_wait` is waited out here, like a far slot would be: the
    /// item is not deferred to Redis, where it would come back up to [`DEFER_JITTER`] plus an
    /// idle poll after the pause ends (about 0.1 s of silence per 429, seen in
    /// `scripts/bench-ratelimit d`). The wait ends on the pause's own end as Redis counts it
    /// (plus at most [`PAUSE_END_SPREAD`], so a large fleet does not ask all at once); the
    /// budget is then asked again, so nothing is sent before the pause is over.
    async fn reserve(&self, action: Option<&str>, budget: &BudgetConfig) -> Result<(), Admission> {
        let held = Instant::now();
        loop {
            match self.reserve_once(action, budget).await {
                Err(Admission::Defer(wait, DeferReason::Paused)) if held.elapsed() + wait <= self.config.max_wait => {
                    tokio::time::sleep(wait + spread(PAUSE_END_SPREAD)).await;
                }
                Err(Admission::Defer(wait, DeferReason::Paused)) => return Err(Admission::Defer(jitter(wait), DeferReason::Paused)),
                other => return other,
            }
        }
    }

    /// One reservation; a pause is answered as `Defer(remaining, Paused)` without jitter.
    async fn reserve_once(&self, action: Option<&str>, budget: &BudgetConfig) -> Result<(), Admission> {
        let asked = Instant::now();
        match self.limits.acquire(action, budget, self.config.max_wait).await {
            Ok(r) if r.reserved => {
                if r.wait > Duration::from_millis(2) {
                    tokio::time::sleep(r.wait).await;
                }
                // A 429 elsewhere in the fleet may have paused the budget while this slot was
                // waiting (or this process was stalled): the pause wins over an older reservation.
                if asked.elapsed() > Duration::from_millis(20) {
                    match self.limits.pause_remaining().await {
                        Ok(p) if !p.is_zero() => return Err(Admission::Defer(p, DeferReason::Paused)),
                        Ok(_) => {}
                        Err(_) => return Err(Admission::Defer(jitter(Duration::from_millis(500)), DeferReason::Unavailable)),
                    }
                }
                Ok(())
            }
            Ok(r) if r.paused => Err(Admission::Defer(r.wait, DeferReason::Paused)),
            Ok(r) => Err(Admission::Defer(jitter(r.wait), DeferReason::RateLimited)),
            Err(e) => {
                tracing::warn!(error = %e, "rate budget unavailable; deferring");
                Err(Admission::Defer(jitter(Duration::from_millis(500)), DeferReason::Unavailable))
            }
        }
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
        match self.limits.breaker_check(&self.config.breaker).await {
            Ok(reply) => {
                let mut view = self.breaker.lock().expect("breaker view");
                *view = view.after(&reply, Instant::now());
                drop(view);
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

    /// With no budget, the fleet pause is read through a short-lived cache.
    async fn paused(&self) -> Option<Duration> {
        let now = Instant::now();
        if let Some((until, fetched)) = *self.pause.lock().expect("pause") {
            if fetched.elapsed() < PAUSE_VIEW_TTL {
                return (until > now).then(|| until - now);
            }
        }
        let remaining = match self.limits.pause_remaining().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "pause state unavailable; deferring");
                return Some(Duration::from_millis(500));
            }
        };
        *self.pause.lock().expect("pause") = Some((now + remaining, now));
        (!remaining.is_zero()).then_some(remaining)
    }

    /// Reports an attempt's answer: 429s pause the fleet; every answer counts in the breaker's
    /// window (5xx and no answer as failures). `fresh` says the item had never failed before:
    /// only then does a failed probe prove the target is still down.
    pub async fn observe(&self, attempt: &Attempt, probe: bool, fresh: bool) {
        if attempt.auth_failed {
            return;
        }
        self.take_hint(attempt).await;
        if attempt.status == Some(429) {
            self.throttle(attempt).await;
        }
        if attempt.status.is_none() && attempt.transport.is_none() {
            return; // refused locally: says nothing about the target
        }
        let failure = is_breaker_failure(attempt.status);
        let (answers, failures) = {
            let mut u = self.unreported.lock().expect("unreported");
            u.answers += 1;
            u.failures += u64::from(failure);
            if !(failure || probe || u.answers >= REPORT_BATCH || u.since.elapsed() >= REPORT_EVERY) {
                return;
            }
            let taken = (u.answers, u.failures);
            *u = Unreported { answers: 0, failures: 0, since: Instant::now() };
            taken
        };
        let probe = match (probe, failure, fresh) {
            (false, _, _) => ProbeResult::None,
            (true, false, _) => ProbeResult::Success,
            (true, true, true) => ProbeResult::Failure,
            (true, true, false) => ProbeResult::Inconclusive,
        };
        match self.limits.breaker_report(&self.config.breaker, answers, failures, probe).await {
            Ok(reply) => {
                let mut view = self.breaker.lock().expect("breaker view");
                *view = view.after(&reply, Instant::now());
                drop(view);
                match reply.verdict.as_str() {
                    "opened" => tracing::warn!(
                        event = "breaker.opened",
                        failures = reply.failures,
                        answers = reply.answers,
                        cooldown_ms = reply.wait.as_millis() as u64,
                        "circuit breaker opened: all workers stop sending"
                    ),
                    "reopened" => tracing::warn!(event = "breaker.reopened", "half-open probe failed; circuit breaker open again"),
                    "inconclusive" => tracing::info!(event = "breaker.probe_inconclusive", "the probe's item had failed before; probing again"),
                    "closed" => tracing::info!(event = "breaker.closed", "circuit breaker closed: sending resumes"),
                    _ => {}
                }
            }
            Err(e) => {
                // Put the counts back so they are reported with the next batch.
                let mut u = self.unreported.lock().expect("unreported");
                u.answers += answers;
                u.failures += failures;
                tracing::warn!(error = %e, "could not report to the circuit breaker");
            }
        }
    }

    /// While discovering, a limit the target states (`RateLimit-Policy`) replaces the search.
    async fn take_hint(&self, attempt: &Attempt) {
        let Some(budget) = self.config.budget.filter(|b| b.discover) else { return };
        if self.hinted.load(Ordering::Relaxed) {
            return;
        }
        let Some(limit) = attempt.rate_policy.as_deref().and_then(parse_rate_policy) else { return };
        self.hinted.store(true, Ordering::Relaxed);
        match self.limits.hint(limit, &budget).await {
            Ok(true) => tracing::info!(event = "ratelimit.hint", limit, "the target states its rate limit; cruising under it"),
            Ok(false) => {}
            Err(e) => {
                self.hinted.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "could not record the target's stated rate limit");
            }
        }
    }

    /// A 429: pause the tenant's fleet (and, adaptive or discovering, lower its rate).
    async fn throttle(&self, attempt: &Attempt) {
        let pause =
            attempt.retry_after.as_deref().and_then(|v| parse_retry_after(v, std::time::SystemTime::now())).unwrap_or(self.config.default_pause);
        let budget = self.config.budget.unwrap_or(BudgetConfig { rate: 0.0, burst: 1, adaptive: false, discover: false, initial: 0.0 });
        match self.limits.throttle(pause, &budget).await {
            Ok(remaining) => {
                let now = Instant::now();
                *self.pause.lock().expect("pause") = Some((now + remaining, now));
                tracing::info!(event = "ratelimit.paused", pause_ms = remaining.as_millis() as u64, "429: pausing the fleet");
            }
            Err(e) => tracing::warn!(error = %e, "could not record the 429 pause"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(verdict: &str, wait_ms: u64, at_us: u64) -> BreakerReply {
        BreakerReply { verdict: verdict.into(), wait: Duration::from_millis(wait_ms), failures: 0, answers: 0, at_us }
    }

    fn closed(at_us: u64, fetched: Instant) -> BreakerView {
        BreakerView { open_until: None, fetched, at_us }
    }

    #[test]
    fn a_verdict_reached_before_the_one_held_is_ignored() {
        let t0 = Instant::now();
        let open = closed(100, t0).after(&reply("opened", 2000, 200), t0);
        assert_eq!(open.open_until, Some(t0 + Duration::from_secs(2)));
        // A `counted` Redis gave before the `opened`, arriving after it, keeps the breaker open.
        let late = open.after(&reply("counted", 0, 150), t0 + Duration::from_millis(5));
        assert_eq!((late.open_until, late.at_us), (open.open_until, 200));
        // A later verdict replaces it.
        let later = open.after(&reply("closed", 0, 300), t0 + Duration::from_millis(10));
        assert_eq!((later.open_until, later.at_us), (None, 300));
    }

    #[test]
    fn an_older_stamp_is_taken_once_the_view_is_old() {
        // Redis restarted or its clock stepped back: the view does not stay stuck on its stamp.
        let t0 = Instant::now();
        let open = closed(0, t0).after(&reply("open", 500, 1_000_000), t0);
        let after_restart = open.after(&reply("closed", 0, 5), t0 + CLOCK_STEP_GRACE);
        assert_eq!((after_restart.open_until, after_restart.at_us), (None, 5));
    }

    #[test]
    fn the_probing_process_holds_its_other_items_back() {
        let t0 = Instant::now();
        let probing = closed(1, t0).after(&reply("probe", 1000, 2), t0);
        assert_eq!(probing.open_until, Some(t0 + Duration::from_secs(1)), "held for the probe's lease");
        // An inconclusive probe leaves the breaker half-open: ask again before sending.
        let again = probing.after(&reply("inconclusive", 0, 3), t0);
        assert_eq!(again.open_until, Some(t0));
        let reopened = again.after(&reply("reopened", 2000, 4), t0);
        assert_eq!(reopened.open_until, Some(t0 + Duration::from_secs(2)));
        assert_eq!(reopened.after(&reply("counted", 0, 5), t0).open_until, None);
    }
}
