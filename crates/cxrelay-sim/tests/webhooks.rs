//! End-to-end tests of the Standard Webhooks receiver (`/_sim/webhooks`) over real HTTP; requests are
//! signed here, independently of the simulator's verifier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cxrelay_core::Secret;
use cxrelay_sim::{SimConfig, SimServer, WebhookLog};
use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

/// The HMAC key; the configured secret is `whsec_` + its base64.
const KEY: &[u8] = b"cxrelay-sim test webhook key 32b";

fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

async fn start(secret: Option<String>) -> SimServer {
    let config = SimConfig { webhook_secret: secret.map(Secret::new), ..SimConfig::default() };
    SimServer::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(key: &[u8], id: &str, ts: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn event(n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": "run.finished", "timestamp": "2025-01-02T03:04:05Z", "data": {"n": n}})).unwrap()
}

/// Posts `body` with the given (optional) Standard Webhooks headers.
async fn post(c: &Client, sim: &SimServer, id: Option<&str>, ts: Option<i64>, sig: Option<&str>, body: Vec<u8>) -> StatusCode {
    let mut req = c.post(sim.webhook_url()).header("content-type", "application/json").body(body);
    if let Some(id) = id {
        req = req.header("webhook-id", id);
    }
    if let Some(ts) = ts {
        req = req.header("webhook-timestamp", ts.to_string());
    }
    if let Some(sig) = sig {
        req = req.header("webhook-signature", sig);
    }
    req.send().await.unwrap().status()
}

/// Posts a correctly signed `body` under `id`, timestamped now.
async fn post_signed(c: &Client, sim: &SimServer, id: &str, body: Vec<u8>) -> StatusCode {
    let ts = now();
    let sig = sign(KEY, id, ts, &body);
    post(c, sim, Some(id), Some(ts), Some(&sig), body).await
}

fn ids(log: &WebhookLog) -> Vec<&str> {
    log.received.iter().map(|w| w.id.as_str()).collect()
}

#[tokio::test]
async fn signed_event_is_recorded_and_verified() {
    let sim = start(Some(secret())).await;
    let c = client();
    assert!(sim.webhook_url().starts_with("http://127.0.0.1:") && sim.webhook_url().ends_with("/_sim/webhooks"));
    let ts = now();
    let body = event(7);
    let sig = sign(KEY, "msg_1", ts, &body);
    assert_eq!(post(&c, &sim, Some("msg_1"), Some(ts), Some(&sig), body).await, StatusCode::NO_CONTENT);

    let log = sim.webhooks();
    assert_eq!(log.received.len(), 1);
    let w = &log.received[0];
    assert_eq!((w.id.as_str(), w.event_type.as_str(), w.timestamp.as_str()), ("msg_1", "run.finished", "2025-01-02T03:04:05Z"));
    assert_eq!(w.data, json!({"n": 7}));
    assert!(w.verified);
    assert_eq!(w.attempt_timestamp, Some(ts));
    assert_eq!((log.duplicates, log.rejected, log.refused_while_down, log.down), (0, 0, 0, false));

    // The HTTP view carries the same log, with the wire field names.
    let wire: Value = c.get(sim.webhook_url()).send().await.unwrap().json().await.unwrap();
    assert_eq!(wire["received"][0]["type"], "run.finished");
    assert_eq!(wire["received"][0]["attempt_timestamp"], ts);
    assert_eq!(serde_json::from_value::<WebhookLog>(wire).unwrap(), log);
}

#[tokio::test]
async fn bad_signatures_missing_headers_and_stale_timestamps_are_rejected() {
    let sim = start(Some(secret())).await;
    let c = client();
    let ts = now();

    // Signed with another key, and a signature over a different body.
    let wrong_key = sign(b"some other key", "w1", ts, &event(1));
    assert_eq!(post(&c, &sim, Some("w1"), Some(ts), Some(&wrong_key), event(1)).await, StatusCode::UNAUTHORIZED);
    let other_body = sign(KEY, "w2", ts, &event(99));
    assert_eq!(post(&c, &sim, Some("w2"), Some(ts), Some(&other_body), event(2)).await, StatusCode::UNAUTHORIZED);

    // Each header missing in turn.
    let sig = sign(KEY, "m1", ts, &event(3));
    assert_eq!(post(&c, &sim, None, Some(ts), Some(&sig), event(3)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&c, &sim, Some("m1"), None, Some(&sig), event(3)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&c, &sim, Some("m1"), Some(ts), None, event(3)).await, StatusCode::UNAUTHORIZED);

    // Correctly signed but 10 minutes old (and 10 minutes ahead).
    let old = ts - 600;
    let sig = sign(KEY, "s1", old, &event(4));
    assert_eq!(post(&c, &sim, Some("s1"), Some(old), Some(&sig), event(4)).await, StatusCode::UNAUTHORIZED);
    let ahead = ts + 600;
    let sig = sign(KEY, "s2", ahead, &event(5));
    assert_eq!(post(&c, &sim, Some("s2"), Some(ahead), Some(&sig), event(5)).await, StatusCode::UNAUTHORIZED);

    let log = sim.webhooks();
    assert!(log.received.is_empty(), "{log:?}");
    assert_eq!((log.rejected, log.duplicates), (7, 0));

    // A signed body that is not an event is a 400 and not recorded either.
    assert_eq!(post_signed(&c, &sim, "b1", b"{\"type\":1}".to_vec()).await, StatusCode::BAD_REQUEST);
    assert!(sim.webhooks().received.is_empty());
}

#[tokio::test]
async fn repeated_id_is_a_counted_duplicate() {
    let sim = start(Some(secret())).await;
    let c = client();
    assert_eq!(post_signed(&c, &sim, "dup", event(1)).await, StatusCode::NO_CONTENT);
    assert_eq!(post_signed(&c, &sim, "dup", event(1)).await, StatusCode::NO_CONTENT);
    assert_eq!(post_signed(&c, &sim, "dup", event(2)).await, StatusCode::NO_CONTENT);
    assert_eq!(post_signed(&c, &sim, "other", event(3)).await, StatusCode::NO_CONTENT);
    let log = sim.webhooks();
    assert_eq!(ids(&log), ["dup", "other"]);
    assert_eq!(log.received[0].data, json!({"n": 1}));
    assert_eq!(log.duplicates, 2);

    // Reset forgets events, ids and counters.
    assert_eq!(c.post(format!("{}/_sim/reset", sim.base_url())).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.webhooks(), WebhookLog::default());
    assert_eq!(post_signed(&c, &sim, "dup", event(1)).await, StatusCode::NO_CONTENT);
    assert_eq!(ids(&sim.webhooks()), ["dup"]);
}

#[tokio::test]
async fn down_receiver_refuses_then_records_after_up() {
    let sim = start(Some(secret())).await;
    let c = client();
    sim.set_webhooks_down(true);
    assert!(sim.webhooks().down);
    assert_eq!(post_signed(&c, &sim, "d1", event(1)).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(post_signed(&c, &sim, "d1", event(1)).await, StatusCode::SERVICE_UNAVAILABLE);
    let log = sim.webhooks();
    assert!(log.received.is_empty());
    assert_eq!((log.refused_while_down, log.rejected, log.duplicates), (2, 0, 0));

    sim.set_webhooks_down(false);
    assert_eq!(post_signed(&c, &sim, "d1", event(1)).await, StatusCode::NO_CONTENT);
    assert_eq!(ids(&sim.webhooks()), ["d1"]);

    // The same switch over HTTP.
    let base = sim.webhook_url();
    assert_eq!(c.post(format!("{base}/down")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(post_signed(&c, &sim, "d2", event(2)).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(c.post(format!("{base}/up")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(post_signed(&c, &sim, "d2", event(2)).await, StatusCode::NO_CONTENT);
    let log = sim.webhooks();
    assert_eq!(ids(&log), ["d1", "d2"]);
    assert_eq!((log.refused_while_down, log.down), (3, false));
}

#[tokio::test]
async fn any_matching_signature_in_the_list_is_enough() {
    let sim = start(Some(secret())).await;
    let c = client();
    let ts = now();
    let body = event(1);
    // Key rotation: the first signature is made with the old key, the second with the current one.
    let list = format!("{} {}", sign(b"previous key", "r1", ts, &body), sign(KEY, "r1", ts, &body));
    assert_eq!(post(&c, &sim, Some("r1"), Some(ts), Some(&list), body.clone()).await, StatusCode::NO_CONTENT);
    // Unknown versions and malformed entries are skipped, not fatal.
    let list = format!("v2,abc garbage {}", sign(KEY, "r2", ts, &body));
    assert_eq!(post(&c, &sim, Some("r2"), Some(ts), Some(&list), body.clone()).await, StatusCode::NO_CONTENT);
    // None matching is still a rejection.
    let list = format!("{} {}", sign(b"previous key", "r3", ts, &body), sign(b"another key", "r3", ts, &body));
    assert_eq!(post(&c, &sim, Some("r3"), Some(ts), Some(&list), body).await, StatusCode::UNAUTHORIZED);
    let log = sim.webhooks();
    assert_eq!(ids(&log), ["r1", "r2"]);
    assert!(log.received.iter().all(|w| w.verified));
    assert_eq!(log.rejected, 1);
}

#[tokio::test]
async fn without_a_secret_unsigned_events_are_recorded_unverified() {
    let sim = start(None).await;
    let c = client();
    assert_eq!(post(&c, &sim, Some("u1"), None, None, event(1)).await, StatusCode::NO_CONTENT);
    assert_eq!(post(&c, &sim, Some("u2"), Some(now()), Some("v1,bm90LWEtc2ln"), event(2)).await, StatusCode::NO_CONTENT);
    let log = sim.webhooks();
    assert_eq!(ids(&log), ["u1", "u2"]);
    assert!(log.received.iter().all(|w| !w.verified));
    assert_eq!(log.rejected, 0);
}

#[tokio::test]
async fn invalid_secret_is_refused_at_start() {
    let config = SimConfig { webhook_secret: Some(Secret::new("whsec_***not-base64***")), ..SimConfig::default() };
    let err = SimServer::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("webhook_secret") && !err.to_string().contains("not-base64"), "{err}");
}
