//! `ItemHandler`: one delivery of one item becomes one POST and an [`ItemOutcome`].
//!
//! The handler never fails: every way an attempt can end — success, a permanent answer, a
//! retryable one, an exhausted budget, a poison entry — is an outcome for the checkpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cxrelay_core::classify::{classify, Disposition, FailureClass};
use cxrelay_core::metric;
use cxrelay_core::outcome::error_text;
use cxrelay_core::payload::{BodyShape, BodyTemplate};
use cxrelay_core::profile::Target;
use cxrelay_core::retry::{parse_retry_after, RetryPolicy};
use cxrelay_core::{ItemOutcome, OutcomeKind, RunId};
use cxrelay_cxone::{Attempt, TargetClient};
use cxrelay_queue::{Checkpoint, ItemJob, RunKind};

use crate::export::Exports;

use crate::gate::{Admission, DeferReason, Gate};

/// The `tracing` target of the per-attempt audit events (`worker.audit_log` routes them).
pub const AUDIT_TARGET: &str = "cxrelay_audit";

/// Sends items and decides their fate; shared by every in-flight item of a process.
pub struct ItemHandler {
    client: TargetClient,
    policy: RetryPolicy,
    shape: BodyShape,
    /// Largest body the target takes.
    payload_limit: usize,
    /// Statuses whose `Retry-After` is believed (the profile's).
    retry_after_statuses: Vec<u16>,
    max_redeliveries: u32,
    gate: Gate,
    /// Per run incarnation (id and nonce): a reused run id may name another action or source.
    templates: Mutex<HashMap<(RunId, String), Arc<BodyTemplate>>>,
    /// Export submissions (absent: export runs wait for a worker that has them).
    exports: Option<Exports>,
}

impl ItemHandler {
    /// A handler sending through `client` to `target`, admitted by `gate`.
    pub fn new(client: TargetClient, gate: Gate, policy: RetryPolicy, target: &Target, max_redeliveries: u32) -> Self {
        Self {
            client,
            policy,
            shape: target.body,
            payload_limit: target.max_payload_bytes,
            retry_after_statuses: target.retry_after_statuses.clone(),
            max_redeliveries,
            gate,
            templates: Mutex::default(),
            exports: None,
        }
    }

    /// The same handler, submitting export runs too.
    pub fn with_exports(mut self, exports: Exports) -> Self {
        self.exports = Some(exports);
        self
    }

    pub(crate) fn exports(&self) -> Option<&Exports> {
        self.exports.as_ref()
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The gate (for the breaker's state in the metrics).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The HTTP client (for its token cache statistics).
    pub fn client(&self) -> &TargetClient {
        &self.client
    }

    fn template(&self, job: &ItemJob) -> Arc<BodyTemplate> {
        let mut cache = self.templates.lock().expect("template cache");
        cache
            .entry((job.run.run.clone(), job.run.nonce.clone()))
            .or_insert_with(|| {
                Arc::new(BodyTemplate::new(self.shape, &job.run.action, &job.run.source, job.run.run.as_str()).with_limit(self.payload_limit))
            })
            .clone()
    }

    /// Handles one delivery.
    pub async fn handle(&self, job: &ItemJob) -> Checkpoint {
        let outcome = self.outcome(job).await;
        audit(job, &outcome);
        metrics::counter!(metric::ITEMS, "outcome" => outcome.kind.as_str(), "class" => outcome.class.map_or("none", |c| c.as_str())).increment(1);
        Checkpoint::of(job, outcome)
    }

    async fn outcome(&self, job: &ItemJob) -> ItemOutcome {
        let fail = |class: FailureClass, error: String| ItemOutcome {
            kind: OutcomeKind::Failed,
            attempts: job.attempts,
            throttled: job.throttled,
            status: None,
            class: Some(class),
            latency_us: 0,
            error: Some(error_text(&error)),
        };
        if job.index == u64::MAX {
            return fail(FailureClass::Local, "malformed queue entry: no item index".into());
        }
        if job.redeliveries > self.max_redeliveries {
            return fail(
                FailureClass::Poison,
                format!(
                    "poison item: taken over {} times from workers that died or stalled while sending it (max_redeliveries {})",
                    job.redeliveries, self.max_redeliveries
                ),
            );
        }
        let template = self.template(job);
        if let Err(e) = template.check(job.index, &job.item) {
            return fail(FailureClass::Local, e.to_string());
        }
        let Some(key) = job.run.idempotency.key(&job.run.run, &job.run.action, job.index, &job.item, job.generation) else {
            return fail(FailureClass::Local, "the item has no usable value in its idempotency field".into());
        };
        if job.run.kind == RunKind::Export {
            return self.submit_export(job, &key).await;
        }
        // Have a token before taking a send slot, so a reserved slot is not spent waiting for the
        // token endpoint (the rate budget reads the gap between slots as the target's pace).
        // Failures surface in `execute`, which asks again.
        let _ = self.client.tokens().token().await;
        let waited = std::time::Instant::now();
        let admission = self.gate.admit(&job.run.action).await;
        metrics::histogram!(metric::LIMITER_WAIT).record(waited.elapsed().as_secs_f64());
        let probe = match admission {
            Admission::Send { probe } => probe,
            // Not sent, so not an attempt: the item waits in Redis, not in this worker.
            Admission::Defer(delay, reason) => {
                return ItemOutcome {
                    kind: OutcomeKind::Deferred { delay_ms: delay.as_millis() as u64 },
                    attempts: job.attempts,
                    throttled: job.throttled,
                    status: None,
                    // Waiting for a rate-limit slot is not a failure of any kind (no class: no
                    // history record); a breaker or pause deferral is recorded as such.
                    class: (reason != DeferReason::RateLimited).then_some(FailureClass::Deferred),
                    latency_us: 0,
                    error: Some(reason.as_str().to_owned()),
                };
            }
        };
        let body = Bytes::from(template.body(job.index, &job.item));
        let mut attempt = self.client.execute(&job.run.action, &key, body).await;
        self.believe_retry_after(&mut attempt);
        record_attempt(&attempt);
        // Only an item that never failed before makes a failed probe news about the target.
        self.gate.observe(&attempt, probe, job.attempts == 0).await;
        judge(&self.policy, job.attempts, job.throttled, &attempt, rand::random::<f64>())
    }
}

impl ItemHandler {
    /// Drops a `Retry-After` header on a status the profile does not believe it on, so neither
    /// the item's delay nor the fleet's pause follows it.
    pub(crate) fn believe_retry_after(&self, attempt: &mut Attempt) {
        if attempt.status.is_some_and(|s| !self.retry_after_statuses.contains(&s)) {
            attempt.retry_after = None;
        }
    }
}

/// Counts one request to the target by status class, and its latency.
pub(crate) fn record_attempt(a: &Attempt) {
    let class = match (a.auth_failed, a.status, a.transport) {
        (true, _, _) => "auth",
        (false, Some(429), _) => "429",
        (false, Some(s), _) => match s {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        (false, None, Some(_)) => "transport",
        (false, None, None) => "local",
    };
    metrics::counter!(metric::ATTEMPTS, "status_class" => class).increment(1);
    if class == "429" {
        metrics::counter!(metric::RATE_LIMITED).increment(1);
    }
    metrics::histogram!(metric::ATTEMPT_DURATION).record(a.latency.as_secs_f64());
}

/// One audit event per attempt, as the seed's per-iteration audit log (a no-op unless
/// `worker.audit_log` routes the target somewhere). Waiting for a rate-limit slot is not an
/// attempt; a breaker or pause deferral is recorded.
fn audit(job: &ItemJob, o: &ItemOutcome) {
    if matches!(o.kind, OutcomeKind::Deferred { .. }) && o.class.is_none() {
        return;
    }
    tracing::info!(
        target: AUDIT_TARGET,
        run = %job.run.run,
        tenant = %job.run.tenant,
        action = %job.run.action,
        index = job.index,
        attempt = o.attempts,
        outcome = o.kind.as_str(),
        status = o.status,
        class = o.class.map(|c| c.as_str()),
        latency_us = o.latency_us,
        error = o.error.as_deref(),
        "attempt"
    );
}

/// Turns an HTTP attempt into the item's outcome, given the attempts and 429s before it (pure
/// apart from the jitter `unit` in `[0, 1)`).
///
/// A 429 does not spend the attempt budget (the target is busy, the item is fine); it has its
/// own, larger bound. Every other answer but a success spends one attempt.
pub fn judge(policy: &RetryPolicy, attempts_before: u32, throttled_before: u32, attempt: &Attempt, unit: f64) -> ItemOutcome {
    let throttled = throttled_before + u32::from(attempt.status == Some(429) && !attempt.auth_failed);
    let attempts = if throttled > throttled_before { attempts_before } else { attempts_before + 1 };
    let latency_us = attempt.latency.as_micros() as u64;
    let error = describe(attempt);
    let status = if attempt.auth_failed { None } else { attempt.status };
    let (disposition, class) = if attempt.auth_failed {
        // The token endpoint failed: transient for the item (the next try gets a new token).
        (Disposition::Retryable, FailureClass::Auth)
    } else if attempt.status.is_none() && attempt.transport.is_none() {
        // Refused locally before sending: retrying cannot help.
        (Disposition::Permanent, FailureClass::Local)
    } else {
        (classify(attempt.status), FailureClass::of_status(attempt.status))
    };
    let outcome = |kind| ItemOutcome { kind, attempts, throttled, status, class: Some(class), latency_us, error: error.clone() };
    let gave_up = |what: String| {
        let mut o = outcome(OutcomeKind::Failed);
        o.error = Some(error_text(&format!("{what}; last: {}", error.as_deref().unwrap_or("-"))));
        o
    };
    match disposition {
        Disposition::Success => ItemOutcome { error: None, class: None, ..outcome(OutcomeKind::Succeeded) },
        // The client already refreshed the token and retried once: a second 401 is final.
        Disposition::Unauthorized | Disposition::Permanent => outcome(OutcomeKind::Failed),
        Disposition::Retryable if class == FailureClass::RateLimited && throttled >= policy.max_throttled => {
            gave_up(format!("gave up after {throttled} answers of 429 (max_throttled)"))
        }
        Disposition::Retryable if class != FailureClass::RateLimited && policy.exhausted(attempts) => {
            gave_up(format!("gave up after {attempts} attempts"))
        }
        Disposition::Retryable => {
            let retry_after = attempt.retry_after.as_deref().and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            let delay = policy.delay(attempts.max(1), retry_after, unit);
            outcome(OutcomeKind::Retry { delay_ms: delay.as_millis() as u64 })
        }
    }
}

/// The error text of an attempt: `HTTP 503: <body excerpt>` or the transport failure, redacted
/// and bounded.
fn describe(attempt: &Attempt) -> Option<String> {
    if attempt.is_success() {
        return None;
    }
    let detail = attempt.error.as_deref().unwrap_or("");
    let text = match (attempt.auth_failed, attempt.status, attempt.transport) {
        (true, _, _) => detail.to_owned(),
        (false, Some(403), _) => format!("HTTP 403 (missing permission or scope): {detail}"),
        (false, Some(413), _) => format!("HTTP 413 (payload too large for the target): {detail}"),
        (false, Some(401), _) => format!("HTTP 401 (rejected after a token refresh): {detail}"),
        (false, Some(s), _) => format!("HTTP {s}: {detail}"),
        (false, None, Some(t)) => format!("no response ({t}): {detail}"),
        (false, None, None) => detail.to_owned(),
    };
    Some(error_text(&text))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cxrelay_cxone::TransportError;

    use super::*;

    fn answer(status: u16) -> Attempt {
        Attempt { status: Some(status), latency: Duration::from_millis(3), error: Some(format!("body of {status}")), ..Attempt::default() }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, max_throttled: 4, ..RetryPolicy::default() }
    }

    /// (attempts before, 429s before, attempt) → (kind, attempts after, 429s after, class).
    #[test]
    fn the_judge_table() {
        let transport = Attempt { transport: Some(TransportError::Timeout), error: Some("timed out".into()), ..Attempt::default() };
        let refused = Attempt { transport: Some(TransportError::Connect), error: Some("connection refused".into()), ..Attempt::default() };
        let local = Attempt { error: Some("invalid action id".into()), ..Attempt::default() };
        let token = Attempt { auth_failed: true, status: Some(500), error: Some("token request failed: HTTP 500".into()), ..Attempt::default() };
        type Row = (u32, u32, Attempt, &'static str, u32, u32, Option<FailureClass>);
        let table: Vec<Row> = vec![
            (0, 0, answer(200), "succeeded", 1, 0, None),
            (2, 5, answer(201), "succeeded", 3, 5, None),
            (0, 0, answer(400), "failed", 1, 0, Some(FailureClass::Client)),
            (0, 0, answer(422), "failed", 1, 0, Some(FailureClass::Client)),
            (0, 0, answer(413), "failed", 1, 0, Some(FailureClass::Client)),
            (0, 0, answer(401), "failed", 1, 0, Some(FailureClass::Auth)),
            (0, 0, answer(403), "failed", 1, 0, Some(FailureClass::Permission)),
            (0, 0, answer(503), "retry", 1, 0, Some(FailureClass::Server)),
            (1, 0, answer(500), "retry", 2, 0, Some(FailureClass::Server)),
            (2, 0, answer(502), "failed", 3, 0, Some(FailureClass::Server)),
            (0, 0, transport.clone(), "retry", 1, 0, Some(FailureClass::Transport)),
            (2, 0, transport, "failed", 3, 0, Some(FailureClass::Transport)),
            (2, 0, refused, "failed", 3, 0, Some(FailureClass::Transport)),
            (0, 0, local, "failed", 1, 0, Some(FailureClass::Local)),
            (0, 0, token.clone(), "retry", 1, 0, Some(FailureClass::Auth)),
            (2, 0, token, "failed", 3, 0, Some(FailureClass::Auth)),
            // 429s spend their own budget, never the attempts.
            (2, 0, answer(429), "retry", 2, 1, Some(FailureClass::RateLimited)),
            (2, 2, answer(429), "retry", 2, 3, Some(FailureClass::RateLimited)),
            (0, 3, answer(429), "failed", 0, 4, Some(FailureClass::RateLimited)),
        ];
        for (i, (attempts, throttled, attempt, kind, want_attempts, want_throttled, class)) in table.into_iter().enumerate() {
            let o = judge(&policy(), attempts, throttled, &attempt, 0.5);
            assert_eq!(o.kind.as_str(), kind, "row {i}: {o:?}");
            assert_eq!((o.attempts, o.throttled, o.class), (want_attempts, want_throttled, class), "row {i}: {o:?}");
            assert_eq!(o.error.is_none(), kind == "succeeded", "row {i}: {o:?}");
        }
    }

    #[test]
    fn failures_say_why_and_giving_up_says_how_often() {
        let o = judge(&policy(), 2, 0, &answer(503), 0.5);
        assert!(o.error.as_deref().unwrap().starts_with("gave up after 3 attempts; last: HTTP 503: body of 503"), "{o:?}");
        let o = judge(&policy(), 0, 0, &answer(403), 0.5);
        assert!(o.error.as_deref().unwrap().contains("permission"), "{o:?}");
        let mut throttled = answer(429);
        throttled.retry_after = Some("7".into());
        match judge(&policy(), 0, 0, &throttled, 0.5).kind {
            OutcomeKind::Retry { delay_ms } => assert_eq!(delay_ms, 7000, "Retry-After wins"),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn secrets_in_answers_are_redacted() {
        let mut a = answer(500);
        a.error = Some(r#"{"echo":{"authorization":"Bearer tok-123456"},"access_token":"abc"}"#.into());
        let o = judge(&policy(), 0, 0, &a, 0.5);
        let e = o.error.unwrap();
        assert!(!e.contains("tok-123456") && !e.contains("\"abc\""), "{e}");
    }
}
