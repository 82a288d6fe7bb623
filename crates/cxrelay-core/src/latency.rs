//! Latency histogram buckets: log-scaled so a run's percentiles fit in a few hundred counters.
//!
//! The checkpoint script increments one counter per item; the report reads them back and
//! estimates p50/p95/p99 within the bucket width (about 5%).

/// Growth factor between bucket bounds.
const GROWTH: f64 = 1.05;

/// The bucket of a latency in microseconds.
pub fn bucket_of(latency_us: u64) -> u32 {
    if latency_us <= 1 {
        return 0;
    }
    ((latency_us as f64).ln() / GROWTH.ln()).floor() as u32
}

/// A representative latency (milliseconds) for a bucket: the geometric middle of its bounds.
pub fn bucket_ms(bucket: u32) -> f64 {
    GROWTH.powf(bucket as f64 + 0.5) / 1000.0
}

/// The `q`-quantile (0–1) in milliseconds of a histogram given as (bucket, count) pairs.
pub fn quantile_ms(buckets: &[(u32, u64)], q: f64) -> Option<f64> {
    let mut sorted: Vec<(u32, u64)> = buckets.iter().copied().filter(|(_, c)| *c > 0).collect();
    sorted.sort_unstable();
    let total: u64 = sorted.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (b, c) in &sorted {
        seen += c;
        if seen >= rank {
            return Some(bucket_ms(*b));
        }
    }
    sorted.last().map(|(b, _)| bucket_ms(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for us in [1u64, 10, 100, 1_000, 10_000, 100_000, 10_000_000] {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
            let est = bucket_ms(b) * 1000.0;
            assert!((est / us as f64 - 1.0).abs() < 0.06, "{us}us ~ {est}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = std::collections::BTreeMap::new();
        for ms in 1..=100u64 {
            *h.entry(bucket_of(ms * 1000)).or_insert(0u64) += 1;
        }
        let pairs: Vec<_> = h.into_iter().collect();
        let p50 = quantile_ms(&pairs, 0.5).unwrap();
        let p99 = quantile_ms(&pairs, 0.99).unwrap();
        assert!((47.0..53.0).contains(&p50), "{p50}");
        assert!((95.0..104.0).contains(&p99), "{p99}");
        assert_eq!(quantile_ms(&[], 0.5), None);
    }
}
