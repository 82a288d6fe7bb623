//! When a retryable item is tried again: capped exponential backoff with full jitter, overridden
//! by the server's `Retry-After` (delta-seconds or HTTP-date).

use std::time::{Duration, SystemTime};

/// How many times an item is tried and how long to wait between tries.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first try included) before an item fails permanently.
    pub max_attempts: u32,
    /// Backoff before the second attempt (before jitter).
    pub base: Duration,
    /// Largest backoff (before jitter).
    pub cap: Duration,
    /// Largest `Retry-After` we obey; longer ones are clamped so an item is never parked for days.
    pub max_retry_after: Duration,
    /// 429 answers an item may meet before it fails (they do not count as attempts).
    pub max_throttled: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(3600),
            max_throttled: 100,
        }
    }
}

impl RetryPolicy {
    /// The capped exponential ceiling after `attempt` failed tries (1-based): `min(cap, base·2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }

    /// Full-jitter backoff: uniform in `[0, ceiling(attempt)]`; `unit` is a random number in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay before the next try: the server's `Retry-After` when given, else the backoff.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff(attempt, unit),
        }
    }

    /// Whether another attempt is allowed after `attempts` tries.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (a past date means "now").
///
/// Returns `None` for anything else, so garbage falls back to the backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_bounds() {
        let p = RetryPolicy { base: Duration::from_millis(100), cap: Duration::from_secs(2), ..Default::default() };
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(5), Duration::from_millis(1600));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(1000), Duration::from_secs(2));
        for attempt in 1..20 {
            for unit in [0.0, 0.25, 0.5, 0.999_999] {
                let d = p.backoff(attempt, unit);
                assert!(d <= p.ceiling(attempt), "attempt {attempt} unit {unit}: {d:?}");
            }
        }
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_overrides_backoff_and_is_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(2)), 0.9), Duration::from_secs(2));
        assert_eq!(p.delay(1, Some(Duration::from_secs(86_400)), 0.9), p.max_retry_after);
        assert!(p.delay(1, None, 0.5) <= p.ceiling(1));
    }

    #[test]
    fn attempts_budget() {
        let p = RetryPolicy { max_attempts: 3, ..Default::default() };
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
