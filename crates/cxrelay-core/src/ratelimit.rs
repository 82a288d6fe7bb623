//! The fleet-wide rate limit's arithmetic: GCRA scheduling and the adaptive (AIMD) rate.
//!
//! The Lua scripts in `cxrelay-queue` run exactly these rules on the Redis server clock; this
//! module is the reference they are tested against, and where the rules are unit tested.
//! Times are integer microseconds (Redis truncates Lua numbers in replies).

/// Configuration of one budget (one tenant and action).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Requests per second (the configured ceiling).
    pub rate: f64,
    /// Requests allowed at once above the rate.
    pub burst: u32,
}

impl Budget {
    /// Microseconds between requests at `rate`.
    pub fn interval_us(rate: f64) -> u64 {
        (1_000_000.0 / rate).round().max(1.0) as u64
    }

    /// How far ahead of "now" reservations may run before a request must wait:
    /// `(burst - 1) × interval`, so at most `burst` requests go out at once.
    pub fn tolerance_us(rate: f64, burst: u32) -> u64 {
        Self::interval_us(rate) * u64::from(burst.saturating_sub(1))
    }
}

/// A scheduling decision: send after `wait_us`; `tat` is the new theoretical arrival time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Microseconds to wait before sending.
    pub wait_us: u64,
    /// The budget's theoretical arrival time after this reservation.
    pub tat: u64,
}

/// GCRA, scheduling variant: reserve the next free slot and say how long to wait for it.
///
/// Every call reserves (no retry storm): callers sleep `wait_us`, then send. Over any window of
/// length `t`, at most `burst + t × rate` requests are scheduled.
pub fn schedule(tat: Option<u64>, now: u64, rate: f64, burst: u32) -> Slot {
    let interval = Budget::interval_us(rate);
    let tolerance = Budget::tolerance_us(rate, burst);
    let tat = tat.unwrap_or(now).max(now);
    let allowed_at = tat.saturating_sub(tolerance);
    Slot { wait_us: allowed_at.saturating_sub(now), tat: tat + interval }
}

/// The adaptive rate's rules: cut multiplicatively on a 429, recover additively.
///
/// On a 429 at rate `r`, `r` becomes the learned ceiling and the rate drops to `r × DECREASE`.
/// Recovery is quick up to just below the learned ceiling and slow above it, so a limit that was
/// configured too high converges to the real one and then stays just under it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    /// The rate now in force.
    pub rate: f64,
    /// Rate at which the last 429 was seen (None before the first).
    pub ceiling: Option<f64>,
}

/// Factor applied to the rate on a 429.
pub const DECREASE: f64 = 0.9;
/// Fraction of the learned ceiling below which recovery is fast.
pub const CRUISE: f64 = 0.97;
/// Fast recovery, as a fraction of the configured rate per second.
pub const FAST_RECOVERY: f64 = 0.05;
/// Slow recovery (probing above the ceiling), as a fraction of the configured rate per second.
pub const SLOW_RECOVERY: f64 = 0.002;
/// The rate never drops below this fraction of the configured rate.
pub const FLOOR: f64 = 0.05;

impl Adaptive {
    /// Starts at the configured rate.
    pub fn new(configured: f64) -> Self {
        Self { rate: configured, ceiling: None }
    }

    /// A 429 was seen.
    pub fn on_throttle(self, configured: f64) -> Self {
        let ceiling = Some(self.rate);
        Self { rate: (self.rate * DECREASE).max(configured * FLOOR), ceiling }
    }

    /// `elapsed_us` passed without a 429.
    pub fn recover(self, configured: f64, elapsed_us: u64) -> Self {
        let secs = elapsed_us as f64 / 1e6;
        let fast_until = self.ceiling.map(|c| c * CRUISE).unwrap_or(configured);
        let step = if self.rate < fast_until { FAST_RECOVERY } else { SLOW_RECOVERY };
        let mut rate = self.rate + configured * step * secs;
        if self.rate < fast_until {
            rate = rate.min(fast_until.max(self.rate));
        }
        Self { rate: rate.min(configured), ceiling: self.ceiling }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_burst_goes_at_once_then_requests_are_spaced() {
        let (rate, burst) = (50.0, 5);
        let mut tat = None;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let s = schedule(tat, 1_000_000, rate, burst);
            tat = Some(s.tat);
            waits.push(s.wait_us);
        }
        assert_eq!(waits, vec![0, 0, 0, 0, 0, 20_000, 40_000, 60_000]);
    }

    #[test]
    fn an_idle_budget_does_not_bank_more_than_the_burst() {
        let s = schedule(Some(5), 10_000_000, 10.0, 3);
        assert_eq!(s.wait_us, 0);
        assert_eq!(s.tat, 10_100_000);
    }

    #[test]
    fn never_more_than_burst_above_the_rate_in_any_window() {
        // Callers arrive in clumps; every send time is now + wait.
        let (rate, burst) = (50.0, 5);
        let mut tat = None;
        let mut sends = Vec::new();
        let mut now = 0u64;
        for k in 0..2000u64 {
            now += if k % 37 == 0 { 400_000 } else { 1_000 };
            let s = schedule(tat, now, rate, burst);
            tat = Some(s.tat);
            sends.push(now + s.wait_us);
        }
        sends.sort_unstable();
        for (i, &t) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().take_while(|&&u| u < t + 1_000_000).count();
            assert!(in_window <= 50 + 5, "{in_window} sends in the second after {t}");
        }
    }

    #[test]
    fn adaptive_converges_below_a_lower_real_limit() {
        let configured = 600.0;
        let real = 500.0;
        let mut a = Adaptive::new(configured);
        let mut throttles = 0;
        let mut over = 0.0;
        // One-second steps: a 429 comes once the excess over the real limit has used up a
        // 50-request burst.
        let mut total = 0.0;
        for _ in 0..600 {
            over = (over + (a.rate - real)).max(0.0);
            if over > 50.0 {
                a = a.on_throttle(configured);
                throttles += 1;
                over = 0.0;
            } else {
                a = a.recover(configured, 1_000_000);
            }
            total += a.rate.min(real);
        }
        assert!(throttles < 60, "{throttles} throttles in 10 minutes");
        assert!(total / 600.0 > 0.95 * real, "goodput {}", total / 600.0);
        assert!(a.rate <= configured);
    }

    #[test]
    fn recovery_never_exceeds_the_configured_rate_and_cut_has_a_floor() {
        let mut a = Adaptive::new(100.0);
        for _ in 0..200 {
            a = a.on_throttle(100.0);
        }
        assert!((a.rate - 5.0).abs() < 1e-9);
        for _ in 0..10_000 {
            a = a.recover(100.0, 1_000_000);
        }
        assert_eq!(a.rate, 100.0);
    }
}
