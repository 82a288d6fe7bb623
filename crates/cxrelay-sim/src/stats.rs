//! Observability of the simulator: lock-free request counters ([`SimStats`]), the in-flight gauge
//! and the arrival log ([`Arrival`]) that records every execute request in arrival order.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Most arrivals kept; later ones are dropped (and counted nowhere else).
pub const MAX_ARRIVALS: usize = 5_000_000;

/// Arrivals are stored in chunks of this size so that growth never copies the whole log.
const CHUNK: usize = 64 * 1024;

/// Snapshot of the counters (`GET /_sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Execute requests received.
    pub requests: u64,
    /// Execute requests answered 2xx.
    pub ok: u64,
    /// Execute requests answered 400.
    pub status_400: u64,
    /// Execute requests answered 401.
    pub status_401: u64,
    /// Execute requests answered 403.
    pub status_403: u64,
    /// Execute requests answered 413.
    pub status_413: u64,
    /// Execute requests answered 429.
    pub status_429: u64,
    /// Execute requests answered 5xx.
    pub status_5xx: u64,
    /// Execute requests whose connection was dropped without an answer.
    pub resets: u64,
    /// Repeated idempotency keys (answered 200, not applied again).
    pub duplicates: u64,
    /// Distinct idempotency keys applied.
    pub applied: u64,
    /// Peak number of execute requests in flight at once.
    pub max_concurrent: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Requests to the token endpoint.
    pub token_requests: u64,
    /// Execute requests answered 404.
    #[serde(default)]
    pub status_404: u64,
    /// Execute requests answered 422.
    #[serde(default)]
    pub status_422: u64,
    /// Execute requests in flight when the snapshot was taken.
    #[serde(default)]
    pub in_flight: u64,
}

/// One execute request as seen on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Microseconds since the simulator started.
    pub t_us: u64,
    /// Status answered, or 0 when the connection was reset.
    pub status: u16,
}

/// Wire form of `GET /_sim/arrivals`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrivals {
    /// Every recorded execute request, in arrival order.
    pub arrivals: Vec<Arrival>,
}

/// Monotonic time base of one simulator instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimClock {
    start: Instant,
}

impl SimClock {
    pub fn new() -> Self {
        SimClock { start: Instant::now() }
    }

    /// Microseconds between simulator start and `at`.
    pub fn micros_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_micros()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since simulator start.
    pub fn millis_now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Atomic counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    ok: AtomicU64,
    status_400: AtomicU64,
    status_401: AtomicU64,
    status_403: AtomicU64,
    status_404: AtomicU64,
    status_413: AtomicU64,
    status_422: AtomicU64,
    status_429: AtomicU64,
    status_5xx: AtomicU64,
    pub resets: AtomicU64,
    pub duplicates: AtomicU64,
    pub applied: AtomicU64,
    in_flight: AtomicU64,
    max_concurrent: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub token_requests: AtomicU64,
}

impl Counters {
    /// Counts one execute answer by status class.
    pub fn count_status(&self, status: StatusCode) {
        let counter = match status.as_u16() {
            200..=299 => &self.ok,
            400 => &self.status_400,
            401 => &self.status_401,
            403 => &self.status_403,
            404 => &self.status_404,
            413 => &self.status_413,
            422 => &self.status_422,
            429 => &self.status_429,
            500..=599 => &self.status_5xx,
            _ => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Marks one execute request in flight until the guard drops (also when its future is dropped).
    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_concurrent.fetch_max(now, Relaxed);
        InFlight(self)
    }

    pub fn snapshot(&self) -> SimStats {
        SimStats {
            requests: self.requests.load(Relaxed),
            ok: self.ok.load(Relaxed),
            status_400: self.status_400.load(Relaxed),
            status_401: self.status_401.load(Relaxed),
            status_403: self.status_403.load(Relaxed),
            status_413: self.status_413.load(Relaxed),
            status_429: self.status_429.load(Relaxed),
            status_5xx: self.status_5xx.load(Relaxed),
            resets: self.resets.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            applied: self.applied.load(Relaxed),
            max_concurrent: self.max_concurrent.load(Relaxed),
            tokens_issued: self.tokens_issued.load(Relaxed),
            token_requests: self.token_requests.load(Relaxed),
            status_404: self.status_404.load(Relaxed),
            status_422: self.status_422.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
        }
    }

    /// Zeroes every counter; the peak restarts from the requests now in flight (which stay counted).
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.ok,
            &self.status_400,
            &self.status_401,
            &self.status_403,
            &self.status_404,
            &self.status_413,
            &self.status_422,
            &self.status_429,
            &self.status_5xx,
            &self.resets,
            &self.duplicates,
            &self.applied,
            &self.tokens_issued,
            &self.token_requests,
        ] {
            c.store(0, Relaxed);
        }
        self.max_concurrent.store(self.in_flight.load(Relaxed), Relaxed);
    }
}

/// Guard returned by [`Counters::enter`].
pub(crate) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Append-only, capped log of arrivals, stored in fixed-size chunks.
#[derive(Debug, Default)]
pub(crate) struct ArrivalLog {
    inner: Mutex<ArrivalChunks>,
}

#[derive(Debug, Default)]
struct ArrivalChunks {
    chunks: Vec<Vec<Arrival>>,
    len: usize,
}

impl ArrivalLog {
    pub fn push(&self, a: Arrival) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.len >= MAX_ARRIVALS {
            return;
        }
        inner.len += 1;
        match inner.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(a),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(a);
                inner.chunks.push(chunk);
            }
        }
    }

    /// All arrivals sorted by arrival time (entries are pushed slightly after arrival).
    pub fn snapshot(&self) -> Vec<Arrival> {
        let mut all: Vec<Arrival> = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut all = Vec::with_capacity(inner.len);
            for chunk in &inner.chunks {
                all.extend_from_slice(chunk);
            }
            all
        };
        all.sort_by_key(|a| a.t_us);
        all
    }

    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = ArrivalChunks::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_class_and_tracks_peak() {
        let c = Counters::default();
        for s in [200, 201, 400, 401, 403, 413, 429, 500, 503, 404, 422, 422, 409] {
            c.count_status(StatusCode::from_u16(s).unwrap());
        }
        {
            let _a = c.enter();
            let _b = c.enter();
        }
        let _c = c.enter();
        let s = c.snapshot();
        assert_eq!((s.ok, s.status_400, s.status_5xx, s.max_concurrent), (2, 1, 2, 2));
        assert_eq!((s.status_404, s.status_422, s.in_flight), (1, 2, 1));
        c.reset();
        let s = c.snapshot();
        assert_eq!((s.max_concurrent, s.in_flight), (1, 1));
        assert_eq!((s.ok, s.status_404, s.status_422), (0, 0, 0));
    }

    #[test]
    fn arrival_log_sorts_and_clears() {
        let log = ArrivalLog::default();
        log.push(Arrival { t_us: 5, status: 200 });
        log.push(Arrival { t_us: 3, status: 0 });
        assert_eq!(log.snapshot().iter().map(|a| a.t_us).collect::<Vec<_>>(), vec![3, 5]);
        log.clear();
        assert!(log.snapshot().is_empty());
    }
}
