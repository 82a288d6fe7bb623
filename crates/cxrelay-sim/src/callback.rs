//! Delivery of export completion callbacks: `POST {callbackUrl}` with
//! `{executionId, status, rowsExported, startTime, endTime}`, signed per Standard Webhooks when an
//! export callback secret is configured (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
//! signed by [`cxrelay_core::webhook::sign`]). The `webhook-id` is fixed per execution, so retries
//! and re-sends are recognisable duplicates; the timestamp is the attempt's.
//!
//! A scheduled delivery waits for the export's duration, then tries up to [`ATTEMPTS`] times with a
//! short doubling backoff until the receiver answers 2xx. Neither the secret nor the callback URL
//! (which may carry a token) is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use cxrelay_core::Secret;

use crate::state::SimState;

/// Delivery attempts of one scheduled callback (the first and its retries).
pub(crate) const ATTEMPTS: u32 = 4;

/// Wait before the first retry; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(100);

/// Time allowed for one delivery attempt.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client and signing key callbacks are sent with.
pub(crate) struct CallbackSender {
    client: reqwest::Client,
    key: Option<Vec<u8>>,
}

impl CallbackSender {
    /// A sender signing with `secret` (already validated by `SimConfig::validate`), or unsigned.
    pub fn new(secret: Option<&Secret>) -> CallbackSender {
        let key = secret.and_then(|s| match cxrelay_core::webhook::signing_key(s) {
            Ok(key) => Some(key),
            Err(_) => {
                tracing::warn!("export callback secret does not decode; callbacks go unsigned");
                None
            }
        });
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
        CallbackSender { client, key }
    }
}

/// Sends the callback of execution `id` once it is due, retrying non-2xx answers, unless the
/// exports are reset (or the simulator stopped) first.
pub(crate) fn schedule(sim: Arc<SimState>, id: String, due: Instant) {
    let epoch = sim.exports.epoch();
    tokio::spawn(async move {
        tokio::time::sleep_until(due.into()).await;
        let mut backoff = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            if sim.exports.epoch() != epoch {
                return;
            }
            match deliver(&sim, &id).await {
                Some(status) if (200..300).contains(&status) => return,
                Some(_) => {}
                // The execution is gone or no longer sends callbacks.
                None => return,
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        tracing::debug!(execution = %id, "export callback not accepted after {ATTEMPTS} attempts");
    });
}

/// One delivery attempt of execution `id`'s callback now: the receiver's status (0 when it did not
/// answer), recorded on the execution; `None` when it has no callback to send.
pub(crate) async fn deliver(sim: &SimState, id: &str) -> Option<u16> {
    let job = sim.exports.callback(id, Instant::now()).ok()?;
    let timestamp = cxrelay_core::now_ms() / 1000;
    let mut req = sim
        .callbacks
        .client
        .post(&job.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &job.webhook_id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(key) = &sim.callbacks.key {
        req = req.header("webhook-signature", cxrelay_core::webhook::sign(key, &job.webhook_id, timestamp, &job.body));
    }
    let status = match req.body(job.body).send().await {
        Ok(res) => res.status().as_u16(),
        Err(e) => {
            tracing::debug!(execution = %id, error = %e.without_url(), "export callback failed");
            0
        }
    };
    sim.exports.record_callback(id, status);
    Some(status)
}
