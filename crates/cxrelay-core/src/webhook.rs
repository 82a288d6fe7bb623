//! Monitoring webhooks without I/O: the events, an endpoint's settings and their checks, and
//! signing per the Standard Webhooks spec (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, payload
//! `{"type", "timestamp", "data"}`).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Secret;

/// Every event type cxrelay emits.
pub const EVENTS: [&str; 12] = [
    "run.started",
    "run.completed",
    "run.paused",
    "run.resumed",
    "run.cancelled",
    "item.failed",
    "item.succeeded",
    "breaker.opened",
    "breaker.closed",
    "replay.started",
    "export.completed",
    "export.overdue",
];

/// Events an endpoint gets when its settings name none: all but the per-item success firehose.
pub fn default_events() -> Vec<String> {
    EVENTS.iter().filter(|e| **e != "item.succeeded").map(|e| e.to_string()).collect()
}

/// One monitoring endpoint (`[[webhooks]]` in the settings file; `CXRELAY_WEBHOOK_URL` and
/// `CXRELAY_WEBHOOK_SECRET` for one more).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Signing secret `whsec_<base64>` (never serialized).
    #[serde(skip_serializing, default)]
    pub secret: Secret,
    /// Event types it receives (`*` for all); default: all but `item.succeeded`.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
}

impl WebhookEndpoint {
    /// Checks URL, secret and event names; the error names the endpoint by its masked URL.
    pub fn check(&self) -> Result<(), String> {
        let url = display_url(&self.url);
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        let host = self.url.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or("")).unwrap_or("");
        if !scheme_ok || host.is_empty() || host.ends_with('@') {
            return Err(format!("webhook url {url:?} is not an http(s) URL with a host"));
        }
        signing_key(&self.secret).map_err(|why| format!("webhook secret of {url}: {why}"))?;
        for e in &self.events {
            if e != "*" && !EVENTS.contains(&e.as_str()) {
                return Err(format!("webhook {url}: unknown event {e:?}; expected * or one of {}", EVENTS.join(", ")));
            }
        }
        Ok(())
    }

    /// Does it receive events of `kind`?
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == kind)
    }

    /// A short stable id for Redis fields (a hash of the URL: no credentials are stored).
    pub fn id(&self) -> String {
        format!("{:016x}", crate::ids::fnv1a(crate::ids::FNV_OFFSET, &[self.url.as_bytes()]))
    }
}

/// How an endpoint's URL is shown (status, logs, errors): scheme and host only, with `/…` when
/// there was more. Webhook URLs often carry their secret in the path or the query (Slack, Teams),
/// and credentials in `user:password@`; none of that is shown — the endpoint id tells them apart.
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let host = rest[..end].rsplit_once('@').map_or(&rest[..end], |(_, h)| h);
            let more = if end < rest.len() && &rest[end..] != "/" { "/…" } else { "" };
            format!("{scheme}://{host}{more}")
        }
        None => "(not a URL)".to_owned(),
    }
}

/// The HMAC key of a `whsec_<base64>` secret.
pub fn signing_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let Some(b64) = secret.expose().strip_prefix("whsec_") else {
        return Err("expected whsec_ followed by base64 (the Standard Webhooks form)".into());
    };
    let key = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "the part after whsec_ is not base64".to_owned())?;
    if key.len() < 16 {
        return Err("the key is shorter than 16 bytes".into());
    }
    Ok(key)
}

/// The `webhook-signature` value for one delivery attempt.
pub fn sign(key: &[u8], id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `signatures` (a `webhook-signature` header: space-separated `v1,<base64>` entries)
/// holds a valid signature of `id`, `timestamp` and `body` under `key`, in constant time.
pub fn verify(key: &[u8], id: &str, timestamp: &str, body: &[u8], signatures: &str) -> bool {
    let Ok(secs) = timestamp.trim().parse::<u64>() else { return false };
    let want = sign(key, id, secs, body);
    signatures.split_whitespace().any(|sig| bool::from(subtle::ConstantTimeEq::ct_eq(sig.as_bytes(), want.as_bytes())))
}

/// The body of an event: `{"type", "timestamp", "data"}` (timestamp RFC 3339, when it happened).
pub fn payload(kind: &str, at_ms: u64, data: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"type": kind, "timestamp": crate::oncall::rfc3339(at_ms), "data": data})).expect("json")
}

/// Delay before the `attempt`-th retry of a delivery (1-based): 1 s doubling to 1 h, with full
/// jitter from `unit` in `[0, 1)`; deliveries are retried this way for `MAX_AGE` (3 days).
pub fn retry_delay_ms(attempt: u32, unit: f64) -> u64 {
    let cap = 3_600_000u64;
    let base = 1000u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(22)).min(cap);
    (base as f64 * (0.5 + unit / 2.0)) as u64
}

/// How long an event is retried before it is given up (recorded on the endpoint's status).
pub const MAX_AGE_MS: u64 = 3 * 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, secret: &str) -> WebhookEndpoint {
        WebhookEndpoint { url: url.into(), secret: Secret::new(secret), events: default_events() }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_spec_example_signature() {
        // The example of the Standard Webhooks specification.
        let key = signing_key(&Secret::new(SECRET)).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, good));
        assert!(verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, &format!("v1,bm9wZQ== {good}")), "any of several");
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body, good), "another timestamp");
        assert!(!verify(&key, "msg_other", "1614265330", body, good), "another id");
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b"{}", good), "another body");
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "x", body, good));
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, ""));
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(endpoint("https://hooks.example.com/x", SECRET).check().is_ok());
        let e = endpoint("ftp://x", SECRET).check().unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = endpoint("https://u:pw@h/x", "nope").check().unwrap_err();
        assert!(e.contains("whsec_") && e.contains("https://h/…") && !e.contains("pw"), "{e}");
        assert_eq!(display_url("https://hooks.slack.com/services/T0/B0/SECRET?x=1"), "https://hooks.slack.com/…");
        assert_eq!(display_url("http://127.0.0.1:9/"), "http://127.0.0.1:9");
        let e = endpoint("https://h/x", "whsec_!!!").check().unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        let mut bad = endpoint("https://h/x", SECRET);
        bad.events = vec!["run.exploded".into()];
        assert!(bad.check().unwrap_err().contains("unknown event \"run.exploded\""));
        assert!(endpoint("https://h/", SECRET).wants("run.completed"));
        assert!(!endpoint("https://h/", SECRET).wants("item.succeeded"));
        assert_eq!(endpoint("https://h/", SECRET).id(), endpoint("https://h/", "other").id());
        assert_ne!(endpoint("https://h/", SECRET).id(), endpoint("https://h/2", SECRET).id());
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert!((500..=1000).contains(&retry_delay_ms(1, 0.0)) && retry_delay_ms(1, 0.999) <= 1000);
        assert!(retry_delay_ms(3, 0.5) > retry_delay_ms(2, 0.5));
        assert!(retry_delay_ms(40, 0.999) <= 3_600_000);
    }
}
