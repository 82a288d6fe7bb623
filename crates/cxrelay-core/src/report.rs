//! A run's state matrix (as stored in its Redis hash) and the report computed from it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::latency::quantile_ms;

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The producer is still writing items; workers do not see the run yet.
    Loading,
    /// Items are being delivered.
    Active,
    /// An operator paused it: nothing new is sent; items in flight finish.
    Paused,
    /// Every accepted item succeeded or failed.
    Finished,
    /// An operator cancelled it: nothing more is sent; its pending items are cancelled.
    Cancelled,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "loading" => Some(Self::Loading),
            "active" => Some(Self::Active),
            "paused" => Some(Self::Paused),
            "finished" => Some(Self::Finished),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// The seed's state matrix for one run, as read from Redis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSnapshot {
    /// Run id.
    pub run_id: String,
    /// Target action id.
    pub action: String,
    /// The tenant the run belongs to.
    pub tenant: String,
    /// Where the input came from (file name or `stdin`).
    pub source: String,
    /// Life-cycle status.
    pub status: RunStatus,
    /// Items accepted into the queue.
    pub accepted: u64,
    /// Items rejected by validation (never sent).
    pub validation_failures: u64,
    /// Items that succeeded.
    pub succeeded: u64,
    /// Items that failed permanently.
    pub failed: u64,
    /// Items past `--max-items` that were not enqueued.
    pub skipped_beyond_max: u64,
    /// The `--max-items` limit, if any.
    pub max_items: Option<u64>,
    /// Every index below this one is finished (succeeded, failed or invalid).
    pub high_water: u64,
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Failed items an operator replayed (each replay counted).
    pub replayed: u64,
    /// Why the run is paused or was cancelled (operator's reason or the failure-rate guard).
    pub status_reason: Option<String>,
    /// Why the producer stopped early, if it did (the seed's break condition).
    pub break_condition: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// First checkpoint, ms since the epoch.
    pub started_ms: Option<u64>,
    /// When the last item finished, ms since the epoch.
    pub finished_ms: Option<u64>,
    /// Last checkpoint, ms since the epoch.
    pub last_snapshot_ms: Option<u64>,
}

impl RunSnapshot {
    /// Builds the snapshot from the run's state hash; `None` if the hash is missing or malformed.
    pub fn from_fields(f: &HashMap<String, String>) -> Option<Self> {
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        let n = |k: &str| num(k).unwrap_or(0);
        Some(Self {
            run_id: f.get("id")?.clone(),
            action: f.get("action").cloned().unwrap_or_default(),
            tenant: f.get("tenant").cloned().unwrap_or_else(|| "default".into()),
            source: f.get("source").cloned().unwrap_or_default(),
            status: RunStatus::parse(f.get("status")?)?,
            accepted: n("accepted"),
            validation_failures: n("invalid"),
            succeeded: n("succeeded"),
            failed: n("failed"),
            skipped_beyond_max: n("beyond_max"),
            max_items: num("max_items"),
            high_water: n("high_water"),
            retries: n("retries"),
            replayed: n("replayed"),
            status_reason: f.get("status_reason").filter(|s| !s.is_empty()).cloned(),
            break_condition: f.get("break").filter(|s| !s.is_empty()).cloned(),
            created_ms: n("created_ms"),
            started_ms: num("started_ms"),
            finished_ms: num("finished_ms"),
            last_snapshot_ms: num("last_snapshot_ms"),
        })
    }

    /// Items considered: accepted plus rejected by validation.
    pub fn total(&self) -> u64 {
        self.accepted + self.validation_failures
    }

    /// Accepted items not yet succeeded or failed.
    pub fn pending(&self) -> u64 {
        self.accepted.saturating_sub(self.succeeded + self.failed)
    }
}

/// How a run's failed items failed: counts by class and by status code, and the top reasons.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FailureSummary {
    /// Failed items per class (`4xx`, `5xx`, `429`, `transport`, `auth`, `permission`, `poison`, `local`).
    pub by_class: BTreeMap<String, u64>,
    /// Failed items per last HTTP status (`"503"`), or per class when no answer arrived.
    pub by_status: BTreeMap<String, u64>,
    /// The most common reasons, most frequent first (at most [`TOP_REASONS`]).
    pub top_reasons: Vec<ReasonCount>,
}

/// A failure reason and how many failed items it accounts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    /// The reason (first line of the last error, shortened).
    pub reason: String,
    /// Failed items with this reason.
    pub count: u64,
}

/// Reasons listed in a report.
pub const TOP_REASONS: usize = 5;
/// Distinct reasons counted per run; further ones are counted under [`OTHER_REASONS`].
pub const MAX_DISTINCT_REASONS: u64 = 100;
/// The reason under which reasons beyond [`MAX_DISTINCT_REASONS`] are counted.
pub const OTHER_REASONS: &str = "(other reasons)";

impl FailureSummary {
    /// Reads the run's failure counters (`c:CLASS`, `s:STATUS`, `r:REASON` → count).
    pub fn from_fields(f: &HashMap<String, String>) -> Self {
        let mut out = FailureSummary::default();
        let mut reasons = Vec::new();
        for (k, v) in f {
            let Ok(n) = v.parse::<u64>() else { continue };
            if let Some(c) = k.strip_prefix("c:") {
                out.by_class.insert(c.to_owned(), n);
            } else if let Some(s) = k.strip_prefix("s:") {
                out.by_status.insert(s.to_owned(), n);
            } else if let Some(r) = k.strip_prefix("r:") {
                reasons.push(ReasonCount { reason: r.to_owned(), count: n });
            }
        }
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        reasons.truncate(TOP_REASONS);
        out.top_reasons = reasons;
        out
    }
}

/// The report `cxrelay report` prints: counters plus rates, latency percentiles, throughput, ETA.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Life-cycle status.
    pub status: RunStatus,
    /// Target action id.
    pub action: String,
    /// The tenant the run belongs to.
    pub tenant: String,
    /// Where the input came from.
    pub source: String,
    /// Items considered (accepted + validation failures).
    pub total: u64,
    /// Items accepted into the queue.
    pub accepted: u64,
    /// Items that succeeded.
    pub succeeded: u64,
    /// Items that failed permanently.
    pub failed: u64,
    /// Accepted items still to finish (0 once cancelled: they count as `cancelled`).
    pub pending: u64,
    /// Items a cancellation left undelivered.
    pub cancelled: u64,
    /// Failed items an operator replayed.
    pub replayed: u64,
    /// Why the run is paused or was cancelled.
    pub status_reason: Option<String>,
    /// Items rejected before sending.
    pub validation_failures: u64,
    /// Items past `--max-items`, not enqueued.
    pub skipped_beyond_max: u64,
    /// Retries made.
    pub retries: u64,
    /// succeeded / total, 0–1 (1 for an empty run).
    pub completion_rate: f64,
    /// Every index below this one is finished.
    pub high_water: u64,
    /// Median latency in ms.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency in ms.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency in ms.
    pub latency_p99_ms: Option<f64>,
    /// Finished items per second since the first checkpoint.
    pub throughput_per_s: f64,
    /// Seconds since the first checkpoint (until finish, if finished).
    pub elapsed_s: f64,
    /// Estimated seconds to finish at the current throughput.
    pub eta_s: Option<f64>,
    /// The seed's break condition, if the producer stopped early.
    pub break_condition: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// First checkpoint, ms since the epoch.
    pub started_ms: Option<u64>,
    /// Finish time, ms since the epoch.
    pub finished_ms: Option<u64>,
    /// Last checkpoint, ms since the epoch.
    pub last_snapshot_ms: Option<u64>,
    /// How the failed items failed.
    pub failures: FailureSummary,
    /// Something an operator should know (e.g. no worker serves the run's tenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl RunReport {
    /// Computes the report from a snapshot, the latency histogram, the failure counters and the current time.
    pub fn new(s: &RunSnapshot, latency: &[(u32, u64)], failures: FailureSummary, now_ms: u64) -> Self {
        let total = s.total();
        let finished = s.succeeded + s.failed;
        let end = s.finished_ms.unwrap_or(now_ms);
        let elapsed_s = s.started_ms.map(|st| end.saturating_sub(st) as f64 / 1000.0).unwrap_or(0.0);
        let throughput = if elapsed_s > 0.0 { finished as f64 / elapsed_s } else { 0.0 };
        let (pending, cancelled) = if s.status == RunStatus::Cancelled { (0, s.pending()) } else { (s.pending(), 0) };
        let eta_s = if pending == 0 {
            Some(0.0)
        } else if throughput > 0.0 {
            Some(pending as f64 / throughput)
        } else {
            None
        };
        Self {
            run_id: s.run_id.clone(),
            status: s.status,
            action: s.action.clone(),
            tenant: s.tenant.clone(),
            source: s.source.clone(),
            total,
            accepted: s.accepted,
            succeeded: s.succeeded,
            failed: s.failed,
            pending,
            cancelled,
            replayed: s.replayed,
            status_reason: s.status_reason.clone(),
            validation_failures: s.validation_failures,
            skipped_beyond_max: s.skipped_beyond_max,
            retries: s.retries,
            completion_rate: if total == 0 { 1.0 } else { s.succeeded as f64 / total as f64 },
            high_water: s.high_water,
            latency_p50_ms: quantile_ms(latency, 0.50),
            latency_p95_ms: quantile_ms(latency, 0.95),
            latency_p99_ms: quantile_ms(latency, 0.99),
            throughput_per_s: throughput,
            elapsed_s,
            eta_s,
            break_condition: s.break_condition.clone(),
            created_ms: s.created_ms,
            started_ms: s.started_ms,
            finished_ms: s.finished_ms,
            last_snapshot_ms: s.last_snapshot_ms,
            failures,
            warning: None,
        }
    }

    /// Human-readable multi-line rendering.
    pub fn to_text(&self) -> String {
        let ms = |v: Option<f64>| v.map(|x| format!("{x:.1} ms")).unwrap_or_else(|| "-".into());
        let mut out = String::new();
        out.push_str(&format!("run {}  [{:?}]  tenant {}  action {}  source {}\n", self.run_id, self.status, self.tenant, self.action, self.source));
        out.push_str(&format!(
            "  total {}  succeeded {}  failed {}  pending {}  validation failures {}\n",
            self.total, self.succeeded, self.failed, self.pending, self.validation_failures
        ));
        if self.cancelled > 0 {
            out.push_str(&format!("  cancelled {} (never sent)\n", self.cancelled));
        }
        if let Some(why) = &self.status_reason {
            out.push_str(&format!("  {}: {why}\n", self.status));
        }
        out.push_str(&format!("  completion {:.2}%  retries {}  high-water index {}\n", self.completion_rate * 100.0, self.retries, self.high_water));
        if self.replayed > 0 {
            out.push_str(&format!("  replayed {} failed item(s)\n", self.replayed));
        }
        out.push_str(&format!("  latency p50 {}  p95 {}  p99 {}\n", ms(self.latency_p50_ms), ms(self.latency_p95_ms), ms(self.latency_p99_ms)));
        let eta = self.eta_s.map(|e| format!("{e:.1} s")).unwrap_or_else(|| "-".into());
        out.push_str(&format!("  throughput {:.1} items/s  elapsed {:.1} s  eta {}\n", self.throughput_per_s, self.elapsed_s, eta));
        if self.skipped_beyond_max > 0 || self.break_condition.is_some() {
            out.push_str(&format!(
                "  break: {} ({} items past the limit not enqueued)\n",
                self.break_condition.as_deref().unwrap_or("-"),
                self.skipped_beyond_max
            ));
        }
        if let Some(w) = &self.warning {
            out.push_str(&format!("  warning: {w}\n"));
        }
        if self.failed > 0 {
            let join = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!("  failed by class: {}\n", join(&self.failures.by_class)));
            out.push_str(&format!("  failed by status: {}\n", join(&self.failures.by_status)));
            out.push_str("  top reasons:\n");
            for r in &self.failures.top_reasons {
                out.push_str(&format!("    {:>7}  {}\n", r.count, r.reason));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn snapshot_and_report() {
        let f = fields(&[
            ("id", "r1"),
            ("action", "a"),
            ("source", "x.json"),
            ("status", "active"),
            ("accepted", "90"),
            ("invalid", "10"),
            ("succeeded", "60"),
            ("failed", "3"),
            ("created_ms", "1000"),
            ("started_ms", "2000"),
        ]);
        let s = RunSnapshot::from_fields(&f).unwrap();
        assert_eq!(s.total(), 100);
        assert_eq!(s.pending(), 27);
        let failures = FailureSummary::from_fields(&fields(&[
            ("c:4xx", "2"),
            ("c:5xx", "1"),
            ("s:400", "2"),
            ("s:503", "1"),
            ("r:HTTP 400: bad", "2"),
            ("r:gave up after 8 attempts", "1"),
            ("nreasons", "2"),
        ]));
        assert_eq!(failures.top_reasons[0], ReasonCount { reason: "HTTP 400: bad".into(), count: 2 });
        let r = RunReport::new(&s, &[(100, 5)], failures, 5000);
        assert_eq!(r.completion_rate, 0.6);
        assert_eq!(r.elapsed_s, 3.0);
        assert!((r.throughput_per_s - 21.0).abs() < 1e-9);
        assert!((r.eta_s.unwrap() - 27.0 / 21.0).abs() < 1e-9);
        assert!(r.latency_p50_ms.is_some());
        assert!(r.to_text().contains("pending 27"));
        assert!(r.to_text().contains("failed by status: 400 2, 503 1"), "{}", r.to_text());
        assert!(r.to_text().contains("      2  HTTP 400: bad"), "{}", r.to_text());
    }

    #[test]
    fn finished_run_has_zero_eta_and_frozen_elapsed() {
        let f = fields(&[("id", "r"), ("status", "finished"), ("accepted", "4"), ("succeeded", "4"), ("started_ms", "0"), ("finished_ms", "2000")]);
        let r = RunReport::new(&RunSnapshot::from_fields(&f).unwrap(), &[], FailureSummary::default(), 99_000);
        assert_eq!(r.completion_rate, 1.0);
        assert_eq!(r.eta_s, Some(0.0));
        assert_eq!(r.elapsed_s, 2.0);
    }

    #[test]
    fn malformed_hash_is_none() {
        assert!(RunSnapshot::from_fields(&fields(&[("id", "r")])).is_none());
        assert!(RunSnapshot::from_fields(&fields(&[("id", "r"), ("status", "weird")])).is_none());
    }
}
