//! The webhook dispatcher that runs in every worker process: it delivers the events the scripts
//! wrote to the outboxes, signed per Standard Webhooks, once per event across the fleet (a lease
//! per source and endpoint), in order per run and endpoint, retrying with exponential backoff
//! and jitter for [`MAX_AGE_MS`](cxrelay_core::webhook::MAX_AGE_MS).
//!
//! Each endpoint has a task of its own, so a slow or dead endpoint delays no other, and none
//! delays item processing: deliveries run beside the items, never in their path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay_core::now_ms;
use cxrelay_core::redact::redact;
use cxrelay_core::webhook::{display_url, payload, retry_delay_ms, sign, signing_key, WebhookEndpoint, MAX_AGE_MS};
use cxrelay_core::RunId;
use cxrelay_queue::outbox::{Cursor, OutboxEvent, OutboxSource};
use cxrelay_queue::{QueueError, Store};

/// How often a dispatcher looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// How often every run of the tenant is looked at, not only the hinted ones.
const SWEEP: Duration = Duration::from_secs(60);
/// Events read per page.
const PAGE: usize = 200;
/// Timeout of one delivery (at most half the delivery lease).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox depth is counted for the metrics…
const PENDING_EVERY: Duration = Duration::from_secs(5);
/// … and how many events per source at most.
const PENDING_COUNT_CAP: usize = 1000;

/// One endpoint, ready to sign.
struct Endpoint {
    config: WebhookEndpoint,
    id: String,
    key: Vec<u8>,
    masked: String,
    /// When its outbox depth was last counted.
    counted: std::sync::Mutex<Option<Instant>>,
}

/// Delivers a tenant's webhook events to its endpoints.
pub struct Dispatcher {
    store: Store,
    tenant: String,
    holder: String,
    lease: Duration,
    http: reqwest::Client,
    endpoints: Vec<Arc<Endpoint>>,
}

/// Why a delivery failed (the endpoint's answer or the transport error, redacted).
type DeliveryError = String;

impl Dispatcher {
    /// A dispatcher of `tenant`'s outboxes to `endpoints` (checked settings), holding leases as
    /// `holder` for `lease`.
    pub fn new(store: Store, tenant: &str, holder: &str, lease: Duration, endpoints: &[WebhookEndpoint]) -> Self {
        // A delivery fits in half a lease, so the lease renewed before it cannot lapse during it.
        let timeout = DELIVERY_TIMEOUT.min(lease / 2);
        let http = reqwest::Client::builder().timeout(timeout).user_agent("cxrelay-webhooks").build().expect("HTTP client");
        let endpoints = endpoints
            .iter()
            .map(|config| {
                let key = signing_key(&config.secret).expect("checked with the settings");
                Arc::new(Endpoint { id: config.id(), masked: display_url(&config.url), config: config.clone(), key, counted: Default::default() })
            })
            .collect();
        Self { store, tenant: tenant.to_owned(), holder: holder.to_owned(), lease, http, endpoints }
    }

    /// Starts one delivery task per endpoint (none without endpoints); they run until the
    /// process ends.
    pub fn spawn(self) {
        let this = Arc::new(self);
        for endpoint in this.endpoints.clone() {
            let this = this.clone();
            tokio::spawn(async move { this.run(endpoint).await });
        }
    }

    async fn run(&self, ep: Arc<Endpoint>) {
        let mut last_sweep: Option<Instant> = None;
        loop {
            let sweep = last_sweep.is_none_or(|t| t.elapsed() >= SWEEP);
            if let Err(e) = self.pass(&ep, sweep).await {
                tracing::warn!(endpoint = %ep.masked, error = %e, "webhook dispatch pass failed; retrying");
            }
            if sweep {
                last_sweep = Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look at every source with events: the hinted runs (every run on a sweep) and the
    /// tenant's breaker events.
    async fn pass(&self, ep: &Endpoint, sweep: bool) -> Result<(), QueueError> {
        let mut runs = self.store.hinted_outboxes(&self.tenant).await?;
        if sweep {
            for run in self.store.listed_runs(&self.tenant).await? {
                if !runs.contains(&run) {
                    runs.push(run);
                }
            }
        }
        let mut sources: Vec<OutboxSource> = runs.iter().filter_map(|r| RunId::parse(r).ok()).map(OutboxSource::Run).collect();
        sources.push(OutboxSource::Breaker(self.tenant.clone()));
        let mut backlog = Vec::new();
        for source in sources {
            if self.drain(ep, &source).await? {
                self.maybe_unhint(&source).await?;
            } else {
                backlog.push(source);
            }
        }
        // The outbox depth for the metrics: counted at most every few seconds, and at most
        // PENDING_COUNT_CAP events per source, so a long outage does not cost Redis a scan a pass.
        if ep.counted.lock().expect("count time").is_none_or(|t| t.elapsed() >= PENDING_EVERY) {
            *ep.counted.lock().expect("count time") = Some(Instant::now());
            let mut pending = 0u64;
            for source in &backlog {
                let c = self.store.outbox_cursor(source, &ep.id).await?;
                pending +=
                    self.store.outbox_events(source, &c.after, PENDING_COUNT_CAP).await?.iter().filter(|e| ep.config.wants(&e.kind)).count() as u64;
            }
            metrics::gauge!(cxrelay_core::metric::WEBHOOK_PENDING, "endpoint" => ep.id.clone()).set(pending as f64);
        }
        Ok(())
    }

    /// Delivers `source`'s events to `ep` in order, until done or an attempt fails; true when
    /// the endpoint has every event of the source.
    async fn drain(&self, ep: &Endpoint, source: &OutboxSource) -> Result<bool, QueueError> {
        if !self.store.lock_outbox(source, &ep.id, &self.holder, self.lease).await? {
            return Ok(false);
        }
        let result = self.drain_locked(ep, source).await;
        self.store.unlock_outbox(source, &ep.id, &self.holder).await?;
        result
    }

    async fn drain_locked(&self, ep: &Endpoint, source: &OutboxSource) -> Result<bool, QueueError> {
        let mut cursor = self.store.outbox_cursor(source, &ep.id).await?;
        if cursor.next_ms > now_ms() {
            return Ok(false);
        }
        let mut renewed = std::time::Instant::now();
        loop {
            self.count_trimmed(ep, source, &mut cursor).await?;
            let events = self.store.outbox_events(source, &cursor.after, PAGE).await?;
            if events.is_empty() {
                return Ok(true);
            }
            // Delivered counts go to the status once per page, not once per event.
            let mut delivered = 0;
            for event in &events {
                if !ep.config.wants(&event.kind) {
                    cursor.pass(&event.id);
                    continue;
                }
                // Renew before a delivery once a quarter of the lease has gone (a delivery takes
                // at most half of it): a lapsed lease means another process delivers from here.
                if renewed.elapsed() >= self.lease / 4 {
                    if !self.store.lock_outbox(source, &ep.id, &self.holder, self.lease).await? {
                        return Ok(false);
                    }
                    renewed = std::time::Instant::now();
                }
                match self.deliver(ep, source, event).await {
                    Ok(()) => {
                        cursor.pass(&event.id);
                        delivered += 1;
                        metrics::counter!(cxrelay_core::metric::WEBHOOK_DELIVERIES, "result" => "delivered").increment(1);
                    }
                    Err(why) => {
                        let now = now_ms();
                        metrics::counter!(cxrelay_core::metric::WEBHOOK_DELIVERIES, "result" => "failed").increment(1);
                        if delivered > 0 {
                            self.store.webhook_delivered(&self.tenant, &ep.id, &ep.masked, delivered, now).await?;
                            delivered = 0;
                        }
                        self.store.webhook_failed(&self.tenant, &ep.id, &ep.masked, now, &why).await?;
                        if now.saturating_sub(event.at_ms) > MAX_AGE_MS {
                            tracing::error!(endpoint = %ep.masked, event = %event.kind, "webhook event given up after retrying for its maximum age");
                            self.store.webhook_dropped(&self.tenant, &ep.id).await?;
                            metrics::counter!(cxrelay_core::metric::WEBHOOK_DELIVERIES, "result" => "dropped").increment(1);
                            cursor.pass(&event.id);
                            continue;
                        }
                        cursor.tries += 1;
                        cursor.next_ms = now + retry_delay_ms(cursor.tries, rand::random::<f64>());
                        tracing::warn!(endpoint = %ep.masked, event = %event.kind, tries = cursor.tries, error = %why, "webhook delivery failed; will retry");
                        self.store.set_outbox_cursor(source, &ep.id, &self.holder, &cursor).await?;
                        return Ok(false);
                    }
                }
            }
            let stored = self.store.set_outbox_cursor(source, &ep.id, &self.holder, &cursor).await?;
            if delivered > 0 {
                self.store.webhook_delivered(&self.tenant, &ep.id, &ep.masked, delivered, now_ms()).await?;
            }
            if !stored {
                // The lease lapsed (or the run is gone): whoever holds it now goes on.
                return Ok(false);
            }
            // Still ours: deliveries take at most DELIVERY_TIMEOUT each, a page many of them.
            if !self.store.lock_outbox(source, &ep.id, &self.holder, self.lease).await? {
                return Ok(false);
            }
        }
    }

    /// Counts (metric, endpoint status, a warning) the events the outbox's length cap removed
    /// before this endpoint had them, and moves the cursor's count past them: a backlog that
    /// outgrew the cap loses its oldest events, but never silently.
    async fn count_trimmed(&self, ep: &Endpoint, source: &OutboxSource, cursor: &mut Cursor) -> Result<(), QueueError> {
        let Some(passed) = cursor.passed else { return Ok(()) };
        let trimmed = self.store.outbox_trimmed(source).await?;
        if trimmed > passed {
            let lost = trimmed - passed;
            tracing::error!(endpoint = %ep.masked, lost, "webhook events were trimmed from a full outbox before this endpoint had them");
            metrics::counter!(cxrelay_core::metric::WEBHOOK_TRIMMED).increment(lost);
            self.store.webhook_trimmed(&self.tenant, &ep.id, lost).await?;
            cursor.passed = Some(trimmed);
        }
        Ok(())
    }

    /// POSTs one event, signed afresh (its own timestamp) for this attempt.
    async fn deliver(&self, ep: &Endpoint, source: &OutboxSource, event: &OutboxEvent) -> Result<(), DeliveryError> {
        let id = match source {
            OutboxSource::Run(run) => format!("msg_{run}_{}", event.id),
            OutboxSource::Breaker(tenant) => format!("msg_brk_{tenant}_{}", event.id),
        };
        let body = payload(&event.kind, event.at_ms, &event.data);
        let timestamp = now_ms() / 1000;
        let signature = sign(&ep.key, &id, timestamp, &body);
        let answer = self
            .http
            .post(&ep.config.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            // Without the URL: it may carry the endpoint's secret.
            .map_err(|e| redact(&format!("no answer: {}", e.without_url())).into_owned())?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    /// Drops a run's hint once every endpoint has all of its events (and puts it back if an
    /// event arrived meanwhile).
    async fn maybe_unhint(&self, source: &OutboxSource) -> Result<(), QueueError> {
        let OutboxSource::Run(run) = source else { return Ok(()) };
        // Only the endpoints this process knows: every worker of a tenant has the same settings.
        let Some(last) = self.store.outbox_last_id(source).await? else {
            return self.store.unhint_outbox(&self.tenant, run.as_str()).await;
        };
        for ep in &self.endpoints {
            let c = self.store.outbox_cursor(source, &ep.id).await?;
            if c.after == "0" || stream_id_lt(&c.after, &last) {
                return Ok(());
            }
        }
        self.store.unhint_outbox(&self.tenant, run.as_str()).await?;
        if self.store.outbox_last_id(source).await?.as_deref() != Some(last.as_str()) {
            self.store.hint_outbox(&self.tenant, run.as_str()).await?;
        }
        Ok(())
    }
}

/// `a < b` for stream ids `ms-seq`.
fn stream_id_lt(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))
    };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(stream_id_lt("9-5", "10-0"));
        assert!(stream_id_lt("10-2", "10-10"));
        assert!(!stream_id_lt("10-10", "10-10"));
    }
}
