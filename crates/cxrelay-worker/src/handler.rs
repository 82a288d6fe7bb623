//! `ItemHandler`: one delivery of one item becomes one POST and an [`ItemOutcome`].
//!
//! The handler never fails: every way an attempt can end — success, a permanent answer, a
//! retryable one, an exhausted budget, a poison entry — is an outcome for the checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cxrelay_core::classify::{classify, Disposition};
use cxrelay_core::outcome::{bound_text, MAX_ERROR_LEN};
use cxrelay_core::payload::{BodyShape, BodyTemplate};
use cxrelay_core::retry::{parse_retry_after, RetryPolicy};
use cxrelay_core::{idempotency_key, ItemOutcome, OutcomeKind, RunId};
use cxrelay_cxone::{Attempt, TargetClient};
use cxrelay_queue::{Checkpoint, ItemJob};

use crate::gate::{Admission, Gate};

/// Sends items and decides their fate; shared by every in-flight item of a process.
pub struct ItemHandler {
    client: TargetClient,
    policy: RetryPolicy,
    shape: BodyShape,
    max_redeliveries: u32,
    gate: Gate,
    templates: Mutex<HashMap<RunId, Arc<BodyTemplate>>>,
}

impl ItemHandler {
    /// A handler sending through `client`, admitted by `gate`.
    pub fn new(client: TargetClient, gate: Gate, policy: RetryPolicy, shape: BodyShape, max_redeliveries: u32) -> Self {
        Self { client, policy, shape, max_redeliveries, gate, templates: Mutex::default() }
    }

    /// The HTTP client (for its token cache statistics).
    pub fn client(&self) -> &TargetClient {
        &self.client
    }

    fn template(&self, job: &ItemJob) -> Arc<BodyTemplate> {
        let mut cache = self.templates.lock().expect("template cache");
        cache
            .entry(job.run.run.clone())
            .or_insert_with(|| Arc::new(BodyTemplate::new(self.shape, &job.run.action, &job.run.source, job.run.run.as_str())))
            .clone()
    }

    /// Handles one delivery.
    pub async fn handle(&self, job: &ItemJob) -> Checkpoint {
        let outcome = self.outcome(job).await;
        Checkpoint::of(job, outcome)
    }

    async fn outcome(&self, job: &ItemJob) -> ItemOutcome {
        let fail = |error: String| ItemOutcome {
            kind: OutcomeKind::Failed,
            attempts: job.attempts,
            status: None,
            latency_us: 0,
            error: Some(bound_text(&error, MAX_ERROR_LEN)),
        };
        if job.index == u64::MAX {
            return fail("malformed queue entry: no item index".into());
        }
        if job.redeliveries > self.max_redeliveries {
            return fail(format!(
                "abandoned: the item's worker stopped responding {} times (poison item?)",
                job.redeliveries
            ));
        }
        let template = self.template(job);
        if let Err(e) = template.check(job.index, &job.item) {
            return fail(e.to_string());
        }
        // Have a token before taking a send slot, so a reserved slot is not spent waiting for the
        // token endpoint (the rate budget reads the gap between slots as the target's pace).
        // Failures surface in `execute`, which asks again.
        let _ = self.client.tokens().token().await;
        let probe = match self.gate.admit(&job.run.action).await {
            Admission::Send { probe } => probe,
            // Not sent, so not an attempt: the item waits in Redis, not in this worker.
            Admission::Defer(delay, reason) => {
                return ItemOutcome {
                    kind: OutcomeKind::Deferred { delay_ms: delay.as_millis() as u64 },
                    attempts: job.attempts,
                    status: None,
                    latency_us: 0,
                    error: Some(reason.as_str().to_owned()),
                }
            }
        };
        let body = Bytes::from(template.body(job.index, &job.item));
        let key = idempotency_key(&job.run.run, job.index);
        let attempt = self.client.execute(&job.run.action, &key, body).await;
        self.gate.observe(&job.run.action, &attempt, probe).await;
        self.judge(job, &attempt, rand::random::<f64>())
    }

    /// Turns an HTTP attempt into the item's outcome (pure apart from the jitter `unit`).
    pub fn judge(&self, job: &ItemJob, attempt: &Attempt, unit: f64) -> ItemOutcome {
        let attempts = job.attempts + 1;
        let latency_us = attempt.latency.as_micros() as u64;
        let error = describe(attempt);
        let status = if attempt.auth_failed { None } else { attempt.status };
        let outcome = |kind| ItemOutcome { kind, attempts, status, latency_us, error: error.clone() };
        let disposition = if attempt.auth_failed {
            // The token endpoint failed: transient for the item (the next try gets a new token).
            Disposition::Retryable
        } else if attempt.status.is_none() && attempt.transport.is_none() {
            // Refused locally before sending: retrying cannot help.
            Disposition::Permanent
        } else {
            classify(attempt.status)
        };
        match disposition {
            Disposition::Success => ItemOutcome { error: None, ..outcome(OutcomeKind::Succeeded) },
            // The client already refreshed the token and retried once: a second 401 is final.
            Disposition::Unauthorized | Disposition::Permanent => outcome(OutcomeKind::Failed),
            Disposition::Retryable if self.policy.exhausted(attempts) => {
                let mut o = outcome(OutcomeKind::Failed);
                o.error = Some(bound_text(
                    &format!("gave up after {attempts} attempts; last: {}", error.as_deref().unwrap_or("-")),
                    MAX_ERROR_LEN,
                ));
                o
            }
            Disposition::Retryable => {
                let retry_after = attempt.retry_after.as_deref().and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                let delay = self.policy.delay(attempts, retry_after, unit);
                outcome(OutcomeKind::Retry { delay_ms: delay.as_millis() as u64 })
            }
        }
    }
}

/// The error text of an attempt: `HTTP 503: <body excerpt>` or the transport failure.
fn describe(attempt: &Attempt) -> Option<String> {
    if attempt.is_success() {
        return None;
    }
    let detail = attempt.error.as_deref().unwrap_or("");
    let text = match (attempt.auth_failed, attempt.status, attempt.transport) {
        (true, _, _) => detail.to_owned(),
        (false, Some(s), _) => format!("HTTP {s}: {detail}"),
        (false, None, Some(t)) => format!("no response ({t}): {detail}"),
        (false, None, None) => detail.to_owned(),
    };
    Some(bound_text(&text, MAX_ERROR_LEN))
}
