//! The Standard Webhooks receiver under `/_sim/webhooks`: owns signature verification
//! (`v1` HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the key of a `whsec_` secret),
//! the ±5 minute timestamp tolerance, de-duplication by `webhook-id`, the "down" switch and the log of
//! received events with its counters ([`WebhookLog`]). The secret and its key are never logged.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cxrelay_core::Secret;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::reply;
use crate::state::SimState;

/// Header carrying the unique message id (the de-duplication key).
const WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the attempt time in unix seconds.
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying space-separated `v1,<base64>` signatures.
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Largest accepted distance between `webhook-timestamp` and now, in seconds.
const TOLERANCE_SECS: u64 = 5 * 60;
/// Prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// Snapshot of the receiver (`GET /_sim/webhooks`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookLog {
    /// Accepted events, one per distinct `webhook-id`, in arrival order.
    pub received: Vec<ReceivedWebhook>,
    /// Requests that repeated an already recorded `webhook-id` (answered 204, not recorded again).
    pub duplicates: u64,
    /// Requests answered 401 (missing header, no matching signature or timestamp out of tolerance).
    pub rejected: u64,
    /// Requests answered 503 while the receiver was down.
    pub refused_while_down: u64,
    /// Whether the receiver is currently down.
    pub down: bool,
}

/// One accepted webhook event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedWebhook {
    /// The `webhook-id` header.
    pub id: String,
    /// The event's `type` field.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's own `timestamp` field, as sent.
    pub timestamp: String,
    /// The event's `data` field.
    pub data: Value,
    /// Whether a signature was checked and matched (false when no secret is configured).
    pub verified: bool,
    /// The `webhook-timestamp` header in unix seconds (absent only for unsigned requests without it).
    pub attempt_timestamp: Option<i64>,
}

/// Body of a Standard Webhooks event.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    data: Value,
}

/// Decodes the HMAC key of a Standard Webhooks secret (`whsec_<base64>`; the prefix may be left out).
///
/// The error names what is wrong, never the value.
pub(crate) fn signing_key(secret: &Secret) -> Result<Vec<u8>, &'static str> {
    let raw = secret.expose().trim();
    let encoded = raw.strip_prefix(SECRET_PREFIX).unwrap_or(raw);
    let key = STANDARD.decode(encoded).map_err(|_| "must be \"whsec_\" followed by base64")?;
    if key.is_empty() {
        return Err("must not be empty");
    }
    Ok(key)
}

/// How requests are authenticated.
enum Verifier {
    /// No secret configured: unsigned requests are accepted and recorded as not verified.
    Unsigned,
    /// An HMAC keyed with the secret's key, cloned for every request.
    Signed(HmacSha256),
    /// The configured secret does not decode (refused by `SimConfig::validate`); everything is rejected.
    Unusable,
}

/// Outcome of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Recorded,
    Duplicate,
    Down,
    Rejected(&'static str),
    BadRequest(&'static str),
}

/// Events and ids guarded together so that "seen" and "recorded" never disagree.
#[derive(Default)]
struct Log {
    received: Vec<ReceivedWebhook>,
    seen: HashSet<String>,
}

/// The receiver's shared state: the verifier, the down switch, counters and the event log.
pub(crate) struct WebhookReceiver {
    verifier: Verifier,
    down: AtomicBool,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    refused_while_down: AtomicU64,
    log: Mutex<Log>,
}

impl WebhookReceiver {
    /// A receiver that verifies with `secret`, or accepts unsigned requests when there is none.
    pub fn new(secret: Option<&Secret>) -> WebhookReceiver {
        let verifier = match secret.map(signing_key) {
            None => Verifier::Unsigned,
            Some(Ok(key)) => match HmacSha256::new_from_slice(&key) {
                Ok(mac) => Verifier::Signed(mac),
                Err(_) => Verifier::Unusable,
            },
            Some(Err(_)) => Verifier::Unusable,
        };
        WebhookReceiver {
            verifier,
            down: AtomicBool::new(false),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused_while_down: AtomicU64::new(0),
            log: Mutex::new(Log::default()),
        }
    }

    /// Turns the down switch on (503 for every delivery) or off.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Relaxed);
    }

    /// The received events and counters.
    pub fn snapshot(&self) -> WebhookLog {
        let received = self.log.lock().unwrap_or_else(|e| e.into_inner()).received.clone();
        WebhookLog {
            received,
            duplicates: self.duplicates.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            refused_while_down: self.refused_while_down.load(Relaxed),
            down: self.down.load(Relaxed),
        }
    }

    /// Forgets received events, seen ids and counters; the down switch and the secret stay.
    pub(crate) fn reset(&self) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.received.clear();
        log.seen.clear();
        self.duplicates.store(0, Relaxed);
        self.rejected.store(0, Relaxed);
        self.refused_while_down.store(0, Relaxed);
    }

    /// Handles one delivery attempt received at `now` (unix seconds).
    fn receive(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Outcome {
        if self.down.load(Relaxed) {
            self.refused_while_down.fetch_add(1, Relaxed);
            return Outcome::Down;
        }
        let id = header(headers, WEBHOOK_ID);
        let attempt = header(headers, WEBHOOK_TIMESTAMP);
        let verified = match &self.verifier {
            Verifier::Unsigned => false,
            Verifier::Unusable => return self.reject("unusable_secret"),
            Verifier::Signed(mac) => {
                let (Some(id), Some(ts), Some(sigs)) = (id, attempt, header(headers, WEBHOOK_SIGNATURE)) else {
                    return self.reject("missing_header");
                };
                let Ok(ts_secs) = ts.parse::<i64>() else {
                    return self.reject("invalid_timestamp");
                };
                if now.abs_diff(ts_secs) > TOLERANCE_SECS {
                    return self.reject("timestamp_out_of_tolerance");
                }
                if !signature_matches(mac, id, ts, body, sigs) {
                    return self.reject("invalid_signature");
                }
                true
            }
        };
        let Some(id) = id else {
            return Outcome::BadRequest("missing_header");
        };
        let Ok(event) = serde_json::from_slice::<Event>(body) else {
            return Outcome::BadRequest("invalid_body");
        };
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.seen.contains(id) {
            drop(log);
            self.duplicates.fetch_add(1, Relaxed);
            return Outcome::Duplicate;
        }
        log.seen.insert(id.to_owned());
        log.received.push(ReceivedWebhook {
            id: id.to_owned(),
            event_type: event.event_type,
            timestamp: event.timestamp,
            data: event.data,
            verified,
            attempt_timestamp: attempt.and_then(|t| t.parse().ok()),
        });
        Outcome::Recorded
    }

    fn reject(&self, reason: &'static str) -> Outcome {
        self.rejected.fetch_add(1, Relaxed);
        tracing::debug!(reason, "webhook rejected");
        Outcome::Rejected(reason)
    }
}

/// A header's value when present and visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether any `v1,<base64>` entry of `sigs` is the HMAC of `{id}.{ts}.{body}` (compared in constant time).
fn signature_matches(mac: &HmacSha256, id: &str, ts: &str, body: &[u8], sigs: &str) -> bool {
    let mut mac = mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    sigs.split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok())
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `POST /_sim/webhooks`: verifies, de-duplicates and records one event.
pub(crate) async fn receive(State(sim): State<Arc<SimState>>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    match sim.webhooks.receive(&headers, &body, unix_now()) {
        Outcome::Recorded | Outcome::Duplicate => no_content(),
        Outcome::Down => reply::static_json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"receiver_down"}"#),
        Outcome::Rejected(reason) => reply::json(StatusCode::UNAUTHORIZED, &ErrorBody { error: reason }),
        Outcome::BadRequest(reason) => reply::json(StatusCode::BAD_REQUEST, &ErrorBody { error: reason }),
    }
}

/// `GET /_sim/webhooks`: the [`WebhookLog`].
pub(crate) async fn log(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.webhooks.snapshot())
}

/// `POST /_sim/webhooks/down`: answer 503 to every delivery until `/up`.
pub(crate) async fn down(State(sim): State<Arc<SimState>>) -> Response<Body> {
    sim.webhooks.set_down(true);
    tracing::info!("webhook receiver down");
    no_content()
}

/// `POST /_sim/webhooks/up`: accept deliveries again.
pub(crate) async fn up(State(sim): State<Arc<SimState>>) -> Response<Body> {
    sim.webhooks.set_down(false);
    tracing::info!("webhook receiver up");
    no_content()
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
}

fn no_content() -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    // Test vector of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID, HeaderValue::from_str(id).unwrap());
        h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(ts));
        h.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn reference_vector_verifies() {
        let key = signing_key(&Secret::new(SECRET)).unwrap();
        let mac = HmacSha256::new_from_slice(&key).unwrap();
        let ts = TS.to_string();
        assert!(signature_matches(&mac, ID, &ts, BODY.as_bytes(), SIG));
        assert!(signature_matches(&mac, ID, &ts, BODY.as_bytes(), &format!("v1,bm90IGl0 v2,x {SIG}")));
        assert!(!signature_matches(&mac, ID, &ts, b"{}", SIG));
        assert!(!signature_matches(&mac, ID, &ts, BODY.as_bytes(), &SIG.replacen("v1", "v1a", 1)));
    }

    #[test]
    fn secrets_are_checked_without_echoing_them() {
        assert!(signing_key(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).is_ok());
        let err = signing_key(&Secret::new("whsec_not base64!")).unwrap_err();
        assert!(!err.contains("not base64!"));
        assert!(signing_key(&Secret::new("whsec_")).is_err());
    }

    #[test]
    fn tolerance_dedup_and_reset() {
        let r = WebhookReceiver::new(Some(&Secret::new(SECRET)));
        let body = br#"{"type":"t","timestamp":"2021-02-25T15:02:10Z","data":{}}"#;
        let key = signing_key(&Secret::new(SECRET)).unwrap();
        let sign = |id: &str, ts: i64| {
            let mut mac = HmacSha256::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        };
        let now = TS + TOLERANCE_SECS as i64;
        assert_eq!(r.receive(&headers("a", TS, &sign("a", TS)), body, now), Outcome::Recorded);
        assert_eq!(r.receive(&headers("a", TS, &sign("a", TS)), body, now), Outcome::Duplicate);
        let late = now + 1;
        assert!(matches!(r.receive(&headers("b", TS, &sign("b", TS)), body, late), Outcome::Rejected(_)));
        let early = TS - TOLERANCE_SECS as i64 - 1;
        assert!(matches!(r.receive(&headers("c", TS, &sign("c", TS)), body, early), Outcome::Rejected(_)));
        let snap = r.snapshot();
        assert_eq!((snap.received.len(), snap.duplicates, snap.rejected), (1, 1, 2));
        assert_eq!(snap.received[0].attempt_timestamp, Some(TS));
        r.set_down(true);
        r.reset();
        assert_eq!(r.snapshot(), WebhookLog { down: true, ..WebhookLog::default() });
        assert_eq!(r.receive(&headers("a", TS, &sign("a", TS)), body, now), Outcome::Down);
    }

    #[test]
    fn unsigned_mode_records_unverified() {
        let r = WebhookReceiver::new(None);
        let body = br#"{"type":"t","timestamp":"x","data":[1]}"#;
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID, HeaderValue::from_static("u1"));
        assert_eq!(r.receive(&h, body, 0), Outcome::Recorded);
        assert_eq!(r.receive(&HeaderMap::new(), body, 0), Outcome::BadRequest("missing_header"));
        assert_eq!(r.receive(&h, b"not json", 0), Outcome::BadRequest("invalid_body"));
        let snap = r.snapshot();
        assert!(!snap.received[0].verified);
        assert_eq!(snap.received[0].attempt_timestamp, None);
    }
}
