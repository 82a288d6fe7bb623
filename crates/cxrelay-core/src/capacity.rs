//! How many worker processes a tenant can use: the number an autoscaler should aim for.
//!
//! A tenant's work goes out no faster than its rate budget, whatever the number of workers. By
//! Little's law a fleet sending `rate` requests per second, each taking `latency`, keeps
//! `rate × latency` requests in flight; one process holds `concurrency` of them. So
//! `ceil(rate × latency / concurrency)` processes are enough to spend the whole budget, and every
//! pod beyond that only waits for send slots. The backlog caps it as well: `pending` items fill
//! at most `ceil(pending / concurrency)` processes. Without a rate budget (no limit) only the
//! backlog counts; before any latency is known (a first run, scaling from zero) one process
//! starts and measures it.

/// What the gauge is computed from, as the tenant's workers and runs report it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TenantLoad {
    /// Items pending in the tenant's active runs.
    pub pending: u64,
    /// The send rate of the tenant's budget (requests/s); `None` when no budget applies.
    pub rate: Option<f64>,
    /// Typical time of one request to the target, ms; `None` before any was measured.
    pub latency_ms: Option<f64>,
    /// Items one worker process holds in flight.
    pub concurrency: usize,
}

/// Worker processes the tenant can keep busy (0 with nothing pending).
pub fn usable_workers(load: TenantLoad) -> u64 {
    if load.pending == 0 {
        return 0;
    }
    let per_process = load.concurrency.max(1) as f64;
    let by_backlog = (load.pending as f64 / per_process).ceil() as u64;
    let by_budget = match (load.latency_ms, load.rate) {
        // Nothing measured yet: one process finds the latency out.
        (None, _) => 1,
        (Some(_), None) => by_backlog,
        (Some(latency_ms), Some(rate)) => ((rate * latency_ms / 1000.0 / per_process).ceil() as u64).max(1),
    };
    by_budget.min(by_backlog).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pending: u64, rate: Option<f64>, latency_ms: Option<f64>, concurrency: usize) -> TenantLoad {
        TenantLoad { pending, rate, latency_ms, concurrency }
    }

    #[test]
    fn the_budget_limits_what_more_pods_can_do() {
        // 200/s × 0.05 s = 10 in flight: one process of 64 spends the whole budget.
        assert_eq!(usable_workers(load(1_000_000, Some(200.0), Some(50.0), 64)), 1);
        // 5,000/s × 0.05 s = 250 in flight: four processes of 64.
        assert_eq!(usable_workers(load(1_000_000, Some(5_000.0), Some(50.0), 64)), 4);
        // A slower target needs more in flight for the same rate.
        assert_eq!(usable_workers(load(1_000_000, Some(5_000.0), Some(500.0), 64)), 40);
    }

    #[test]
    fn the_backlog_caps_it() {
        assert_eq!(usable_workers(load(100, Some(5_000.0), Some(500.0), 64)), 2);
        assert_eq!(usable_workers(load(1, Some(5_000.0), Some(500.0), 64)), 1);
        assert_eq!(usable_workers(load(0, Some(5_000.0), Some(500.0), 64)), 0);
    }

    #[test]
    fn without_a_budget_or_a_latency() {
        // No limit: as many as the backlog fills.
        assert_eq!(usable_workers(load(1_000, None, Some(50.0), 64)), 16);
        // Nothing measured yet (scaling from zero): one.
        assert_eq!(usable_workers(load(1_000, Some(5_000.0), None, 64)), 1);
        assert_eq!(usable_workers(load(1_000, None, None, 0)), 1);
    }
}
