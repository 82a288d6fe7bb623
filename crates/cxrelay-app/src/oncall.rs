//! The on-call operations of [`App`]: runs and workers, failed items and one item's story,
//! replay, run controls and the audit trail. Front ends (CLI, HTTP) only parse and print.

use std::collections::BTreeMap;

use cxrelay_core::now_ms;
use cxrelay_core::oncall::{rfc3339, FailedFilter};
use cxrelay_core::outcome::reason_of;
use cxrelay_core::report::{RunReport, RunStatus};
use cxrelay_core::RunId;
use cxrelay_queue::oncall::{AuditEvent, Control, ItemView, ReplayCandidate, ReplayRequest, WorkerInfo, PAGE};
use cxrelay_queue::store::FailedItem;
use cxrelay_queue::QueueError;
use serde::Serialize;

use crate::{parse_run, App, AppError};

/// One failed item as `cxrelay failed` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailedRow {
    /// Index in the run's input.
    pub index: u64,
    /// Last HTTP status, or the failure class when no answer arrived (`transport`, `poison`, …).
    pub status: String,
    /// Failure class.
    pub class: String,
    /// Why it failed (redacted, bounded).
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// First attempt, RFC 3339 (from its history; `None` when none was kept).
    pub first_attempt_at: Option<String>,
    /// When it failed, RFC 3339.
    pub last_attempt_at: String,
}

impl FailedRow {
    fn of(index: u64, f: &FailedItem, first_ms: Option<u64>) -> Self {
        Self {
            index,
            status: status_key(f),
            class: f.class.clone(),
            reason: f.reason.clone(),
            attempts: f.attempts,
            first_attempt_at: first_ms.map(rfc3339),
            last_attempt_at: rfc3339(f.at_ms),
        }
    }
}

/// The `s:` counter a failure is counted under: HTTP status, or the class.
fn status_key(f: &FailedItem) -> String {
    f.status.map(|s| s.to_string()).unwrap_or_else(|| f.class.clone())
}

/// Failed items of one status and reason (`failed --summary`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FailureGroup {
    /// Last HTTP status or class.
    pub status: String,
    /// Reason (first line, shortened).
    pub reason: String,
    /// Failed items.
    pub count: u64,
}

/// Reads a run's failed items a page at a time, in index order (see [`App::failed`]).
pub struct FailedPages<'a> {
    app: &'a App,
    run: RunId,
    indexes: Vec<u64>,
    next: usize,
    filter: FailedFilter,
    remaining: usize,
}

impl FailedPages<'_> {
    /// The next page of matching items; `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<FailedRow>>, AppError> {
        let store = self.app.store().await?;
        while self.next < self.indexes.len() && self.remaining > 0 {
            let end = (self.next + PAGE).min(self.indexes.len());
            let page = &self.indexes[self.next..end];
            self.next = end;
            let summaries = store.failed_summaries(&self.run, page).await?;
            let wanted: Vec<(u64, FailedItem)> =
                summaries.into_iter().filter(|(_, f)| self.filter.matches(&f.class, f.status, &f.reason, f.at_ms)).take(self.remaining).collect();
            if wanted.is_empty() {
                continue;
            }
            self.remaining -= wanted.len();
            let indexes: Vec<u64> = wanted.iter().map(|(i, _)| *i).collect();
            let firsts = store.first_attempts(&self.run, &indexes).await?;
            return Ok(Some(wanted.iter().zip(firsts).map(|((index, f), first)| FailedRow::of(*index, f, first)).collect()));
        }
        Ok(None)
    }
}

/// Which items a replay is about.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These indexes (each must have failed).
    Indexes(Vec<u64>),
    /// Failed items matching the filter (an empty filter: every failed item).
    Failed(FailedFilter),
}

impl Selection {
    fn describe(&self) -> String {
        match self {
            Selection::Indexes(ix) if ix.len() <= 20 => format!("--index {}", ix.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
            Selection::Indexes(ix) => format!("--index ({} indexes from {} to {})", ix.len(), ix[0], ix[ix.len() - 1]),
            Selection::Failed(f) if f.is_empty() => "--all-failed".into(),
            Selection::Failed(f) => f.describe(),
        }
    }
}

/// A replay as asked for.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Which items.
    pub selection: Selection,
    /// At most this many (`None`: all selected).
    pub limit: Option<usize>,
    /// Who (recorded).
    pub by: String,
    /// Why (recorded; required).
    pub reason: String,
    /// Give the items a new Idempotency-Key (for targets that cache failed answers).
    pub new_idempotency_key: bool,
    /// Change nothing; say what would happen.
    pub dry_run: bool,
}

/// What a replay did (`cxrelay replay --json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReplayOutcome {
    /// Indexes put back in the queue (in a dry run: that would be).
    pub replayed: Vec<u64>,
    /// Indexes refused, with why.
    pub refused: Vec<Refusal>,
    /// True for a dry run (nothing changed).
    pub dry_run: bool,
}

/// An item a replay refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Refusal {
    /// Index.
    pub index: u64,
    /// Why.
    pub why: String,
}

/// `runs` filter.
#[derive(Debug, Clone, Default)]
pub struct RunsFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// The tenant (`None`: the settings' tenant).
    pub tenant: Option<String>,
}

impl App {
    /// Resolves a run id and checks the run exists.
    async fn existing(&self, run: &str) -> Result<(RunId, RunReport), AppError> {
        let id = parse_run(run)?;
        let report = self.store().await?.report(&id).await?;
        Ok((id, report))
    }

    /// A run's report, flagged when it has pending items and no live worker serves its tenant.
    pub async fn report(&self, run: &str) -> Result<RunReport, AppError> {
        let (_, mut report) = self.existing(run).await?;
        self.flag_unserved(std::slice::from_mut(&mut report)).await?;
        Ok(report)
    }

    async fn flag_unserved(&self, reports: &mut [RunReport]) -> Result<(), AppError> {
        let mut served: BTreeMap<String, bool> = BTreeMap::new();
        for r in reports.iter_mut().filter(|r| r.status == RunStatus::Active && r.pending > 0) {
            if !served.contains_key(&r.tenant) {
                let live = !self.workers(Some(&r.tenant)).await?.is_empty();
                served.insert(r.tenant.clone(), live);
            }
            if !served[&r.tenant] {
                r.warning = Some(format!("no worker is serving tenant {}: start `cxrelay worker` with CXRELAY_TENANT={}", r.tenant, r.tenant));
            }
        }
        Ok(())
    }

    /// A tenant's runs, newest first, optionally of one status; runs that expired are dropped
    /// from the index as they are met.
    pub async fn runs(&self, filter: &RunsFilter) -> Result<Vec<RunReport>, AppError> {
        let store = self.store().await?;
        let tenant = filter.tenant.as_deref().unwrap_or(&self.tenant);
        let mut ids = store.listed_runs(tenant).await?;
        // Runs made before the index existed are still in the active set.
        for id in store.active_runs(tenant).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let Ok(run) = RunId::parse(&id) else { continue };
            match store.report(&run).await {
                Ok(r) if filter.status.is_none_or(|s| s == r.status) => out.push(r),
                Ok(_) => {}
                Err(QueueError::RunNotFound(_)) => store.unlist(tenant, &id).await?,
                // One damaged run does not hide the others.
                Err(QueueError::Corrupt(why)) => tracing::warn!(run = %id, %why, "skipping a run whose state cannot be read"),
                Err(e) => return Err(e.into()),
            }
        }
        out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.run_id.cmp(&b.run_id)));
        self.flag_unserved(&mut out).await?;
        Ok(out)
    }

    /// Live workers of a tenant (`None`: the settings' tenant); expired heartbeats are removed.
    pub async fn workers(&self, tenant: Option<&str>) -> Result<Vec<WorkerInfo>, AppError> {
        let store = self.store().await?;
        let tenant = tenant.unwrap_or(&self.tenant);
        let now = now_ms();
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (consumer, json) in store.heartbeats(tenant).await? {
            match serde_json::from_str::<WorkerInfo>(&json) {
                Ok(w) if w.expires_ms > now => live.push(w),
                _ => gone.push(consumer),
            }
        }
        store.forget_workers(tenant, &gone).await?;
        live.sort_by(|a, b| a.consumer.cmp(&b.consumer));
        Ok(live)
    }

    /// A run's failed items matching `filter` with an index above `after` (a paging cursor), at
    /// most `limit`, read a page at a time.
    pub async fn failed(&self, run: &str, filter: FailedFilter, limit: Option<usize>, after: Option<u64>) -> Result<FailedPages<'_>, AppError> {
        let (run, _) = self.existing(run).await?;
        let indexes = self.store().await?.failed_indexes(&run).await?;
        let next = after.map_or(0, |a| indexes.partition_point(|i| *i <= a));
        Ok(FailedPages { app: self, run, indexes, next, filter, remaining: limit.unwrap_or(usize::MAX) })
    }

    /// Failed items matching `filter` grouped by status and reason, largest group first.
    pub async fn failed_summary(&self, run: &str, filter: FailedFilter) -> Result<Vec<FailureGroup>, AppError> {
        let (run, _) = self.existing(run).await?;
        let store = self.store().await?;
        let indexes = store.failed_indexes(&run).await?;
        let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
        for page in indexes.chunks(PAGE) {
            for (_, f) in store.failed_summaries(&run, page).await? {
                if filter.matches(&f.class, f.status, &f.reason, f.at_ms) {
                    *groups.entry((status_key(&f), reason_of(&f.reason))).or_default() += 1;
                }
            }
        }
        let mut out: Vec<FailureGroup> = groups.into_iter().map(|((status, reason), count)| FailureGroup { status, reason, count }).collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.status.cmp(&b.status)).then_with(|| a.reason.cmp(&b.reason)));
        Ok(out)
    }

    /// One item: state, payload, last failure and whole attempt history.
    pub async fn item(&self, run: &str, index: u64) -> Result<ItemView, AppError> {
        let (id, report) = self.existing(run).await?;
        self.store().await?.item(&id, index).await?.ok_or_else(|| AppError::InvalidArgument {
            what: "index",
            value: index.to_string(),
            reason: format!("run {id} has {} items (indexes 0 to {})", report.total, report.total.saturating_sub(1)),
        })
    }

    /// Re-enqueues exactly the selected failed items, in batches of [`PAGE`] (one script call
    /// each); the rest are refused with why. The replay is recorded in the run's audit stream.
    pub async fn replay(&self, run: &str, replay: Replay) -> Result<ReplayOutcome, AppError> {
        if replay.reason.trim().is_empty() {
            return Err(AppError::InvalidArgument { what: "reason", value: replay.reason, reason: "say why you replay (it is recorded)".into() });
        }
        let (id, report) = self.existing(run).await?;
        if report.status == RunStatus::Cancelled {
            return Err(AppError::NotAllowed(format!("run {id} was cancelled; a cancelled run is not replayed")));
        }
        if let Selection::Indexes(ix) = &replay.selection {
            // An index the run never had is a typo, not a refusal: nothing is replayed.
            if let Some(bad) = ix.iter().find(|i| **i >= report.total) {
                return Err(AppError::InvalidArgument {
                    what: "--index",
                    value: bad.to_string(),
                    reason: format!("run {id} has {} items (indexes 0 to {})", report.total, report.total.saturating_sub(1)),
                });
            }
        }
        let store = self.store().await?;
        let limit = replay.limit.unwrap_or(usize::MAX);
        let candidates: Vec<ReplayCandidate> = match &replay.selection {
            Selection::Indexes(indexes) => {
                let mut out = Vec::new();
                for page in indexes.chunks(PAGE) {
                    let found: BTreeMap<u64, FailedItem> = store.failed_summaries(&id, page).await?.into_iter().collect();
                    out.extend(page.iter().map(|i| match found.get(i) {
                        Some(f) => candidate(*i, f),
                        // Not failed: the script says why (succeeded, pending, out of range…).
                        None => {
                            ReplayCandidate { index: *i, class: String::new(), status_key: String::new(), reason_key: String::new(), failed_at_ms: 0 }
                        }
                    }));
                }
                out.truncate(limit);
                out
            }
            Selection::Failed(filter) => {
                let mut out = Vec::new();
                for page in store.failed_indexes(&id).await?.chunks(PAGE) {
                    if out.len() >= limit {
                        break;
                    }
                    for (i, f) in store.failed_summaries(&id, page).await? {
                        if out.len() < limit && filter.matches(&f.class, f.status, &f.reason, f.at_ms) {
                            out.push(candidate(i, &f));
                        }
                    }
                }
                out
            }
        };
        let selection = replay.selection.describe();
        let mut req = ReplayRequest {
            by: &replay.by,
            reason: &replay.reason,
            selection: &selection,
            new_idempotency_key: replay.new_idempotency_key,
            dry_run: replay.dry_run,
            announce: true,
            requested: candidates.len(),
        };
        let mut outcome = ReplayOutcome { dry_run: replay.dry_run, ..ReplayOutcome::default() };
        for batch in candidates.chunks(PAGE) {
            let done = store.replay_batch(&id, batch, &req).await?;
            req.announce &= done.replayed.is_empty();
            outcome.replayed.extend(done.replayed);
            outcome.refused.extend(done.refused.into_iter().map(|(index, why)| Refusal { index, why }));
        }
        if !replay.dry_run && !outcome.replayed.is_empty() {
            store.activate(&report.tenant, &id).await?;
            if !store.options().events_wanted.is_empty() {
                store.hint_outbox(&report.tenant, id.as_str()).await?;
            }
        }
        Ok(outcome)
    }

    /// Pauses, resumes or cancels a run; returns its status before and after.
    pub async fn control(&self, run: &str, action: Control, by: &str, reason: &str) -> Result<(RunStatus, RunStatus), AppError> {
        let (id, report) = self.existing(run).await?;
        let store = self.store().await?;
        let (from, to) = store.control(&id, action, by, reason).await?;
        if to == RunStatus::Active {
            store.activate(&report.tenant, &id).await?;
        }
        Ok((from, to))
    }

    /// Deletes a finished or cancelled run's data at once.
    pub async fn purge(&self, run: &str) -> Result<(), AppError> {
        let (id, report) = self.existing(run).await?;
        if !matches!(report.status, RunStatus::Finished | RunStatus::Cancelled) {
            return Err(AppError::NotAllowed(format!(
                "run {id} is {}: only a finished or cancelled run is purged (`cxrelay cancel {id}` first)",
                report.status
            )));
        }
        Ok(self.store().await?.purge(&id, &report.tenant).await?)
    }

    /// The run's throughput (items/s) and mean latency (ms) over time, one point per 10 s bucket
    /// that saw a checkpoint, merged to at most `points` (oldest first): (start ms, items/s, latency).
    pub async fn series(&self, run: &str, points: usize) -> Result<Vec<(u64, f64, Option<f64>)>, AppError> {
        let (id, _) = self.existing(run).await?;
        let raw = self.store().await?.series(&id).await?;
        let per = raw.len().div_ceil(points.max(1)).max(1);
        Ok(raw
            .chunks(per)
            .map(|c| {
                let n: u64 = c.iter().map(|p| p.1).sum();
                let (lat, k) = c.iter().filter_map(|p| p.2).fold((0.0, 0), |(s, k), l| (s + l, k + 1));
                (c[0].0, n as f64 / (10.0 * c.len() as f64), (k > 0).then(|| lat / k as f64))
            })
            .collect())
    }

    /// Up to `count` audit events of a run after entry `after` (`"0"`: from the start), oldest
    /// first; page on with the last event's id.
    pub async fn audit(&self, run: &str, after: &str, count: usize) -> Result<Vec<AuditEvent>, AppError> {
        let (id, _) = self.existing(run).await?;
        Ok(self.store().await?.audit(&id, after, count).await?)
    }
}

fn candidate(index: u64, f: &FailedItem) -> ReplayCandidate {
    // The checkpoint counted a failure without an error text under "failed".
    let reason = if f.reason.is_empty() { "failed" } else { f.reason.as_str() };
    ReplayCandidate { index, class: f.class.clone(), status_key: status_key(f), reason_key: reason_of(reason), failed_at_ms: f.at_ms }
}

/// One endpoint's delivery status (`cxrelay webhooks status`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookStatus {
    /// Endpoint id (a hash of its URL).
    pub endpoint: String,
    /// Its URL, credentials masked.
    pub url: String,
    /// Event types it receives.
    pub events: Vec<String>,
    /// Events waiting for it (in runs with undelivered events, and breaker events).
    pub pending: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Events given up after retrying for their maximum age.
    pub dropped: u64,
    /// Events the outbox's length cap removed before this endpoint had them.
    pub trimmed: u64,
    /// Failing since (RFC 3339), while its last attempt failed.
    pub failing_since: Option<String>,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// Last delivery (RFC 3339).
    pub last_success_at: Option<String>,
}

impl App {
    /// Every configured endpoint's delivery status for the settings' tenant.
    pub async fn webhooks_status(&self) -> Result<Vec<WebhookStatus>, AppError> {
        use cxrelay_queue::outbox::OutboxSource;
        let store = self.store().await?;
        let fields = store.webhook_statuses(&self.tenant).await?;
        let mut sources: Vec<OutboxSource> =
            store.hinted_outboxes(&self.tenant).await?.iter().filter_map(|r| RunId::parse(r).ok()).map(OutboxSource::Run).collect();
        sources.push(OutboxSource::Breaker(self.tenant.clone()));
        let mut out = Vec::new();
        for ep in &self.webhooks {
            let id = ep.id();
            let mut pending = 0;
            for source in &sources {
                let cursor = store.outbox_cursor(source, &id).await?;
                // Counted up to 10,000 per source: enough to tell a backlog, bounded for Redis.
                pending += store.outbox_events(source, &cursor.after, 10_000).await?.iter().filter(|e| ep.wants(&e.kind)).count() as u64;
            }
            let get = |f: &str| fields.get(&format!("{id}:{f}")).cloned();
            let num = |f: &str| get(f).and_then(|v| v.parse::<u64>().ok());
            out.push(WebhookStatus {
                url: cxrelay_core::webhook::display_url(&ep.url),
                events: ep.events.clone(),
                pending,
                delivered: num("delivered").unwrap_or(0),
                failures: num("failures").unwrap_or(0),
                dropped: num("dropped").unwrap_or(0),
                trimmed: num("trimmed").unwrap_or(0),
                failing_since: num("failing_since").map(rfc3339),
                last_error: get("last_error").filter(|_| num("failing_since").is_some()),
                last_success_at: num("last_success_ms").map(rfc3339),
                endpoint: id,
            });
        }
        Ok(out)
    }

    /// Sends one signed `webhook.test` event to `url` with the configured endpoint's secret (or
    /// `secret`); returns the HTTP status it answered.
    pub async fn webhook_test(&self, url: &str, secret: Option<cxrelay_core::Secret>) -> Result<u16, AppError> {
        use cxrelay_core::webhook::{payload, sign, WebhookEndpoint};
        let secret =
            secret.or_else(|| self.webhooks.iter().find(|w| w.url == url).map(|w| w.secret.clone())).ok_or_else(|| AppError::InvalidArgument {
                what: "url",
                value: cxrelay_core::webhook::display_url(url),
                reason: "no configured endpoint has this URL: pass --secret whsec_…".into(),
            })?;
        let endpoint = WebhookEndpoint { url: url.to_owned(), secret, events: vec!["*".into()] };
        endpoint.check().map_err(|reason| AppError::InvalidArgument { what: "webhook", value: cxrelay_core::webhook::display_url(url), reason })?;
        let key = cxrelay_core::webhook::signing_key(&endpoint.secret).map_err(|reason| AppError::InvalidArgument {
            what: "secret",
            value: "whsec_…".into(),
            reason,
        })?;
        let now = now_ms();
        let id = format!("msg_test_{now}");
        let body = payload("webhook.test", now, &serde_json::json!({"message": "a test event from cxrelay", "tenant": self.tenant}));
        let answer = reqwest::Client::new()
            .post(url)
            .timeout(std::time::Duration::from_secs(10))
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", (now / 1000).to_string())
            .header("webhook-signature", sign(&key, &id, now / 1000, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                AppError::NotAllowed(
                    cxrelay_core::redact::redact(&format!("{} did not answer: {}", cxrelay_core::webhook::display_url(url), e.without_url()))
                        .into_owned(),
                )
            })?;
        Ok(answer.status().as_u16())
    }
}
