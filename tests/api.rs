//! The HTTP API (`cxrelay serve`) from outside: roles (401/403), the error shape for bad input,
//! idempotent submission, a 100,000-item body streamed in, paging, and operations through it.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;
use serde_json::{json, Value};

const OPERATE: &str = "operate-token-1";
const READ: &str = "read-token-22";
const INGEST: &str = "ingest-token-333";

/// A `cxrelay serve` process (stopped when dropped) and its base URL.
struct Server {
    _proc: harness::WorkerProc,
    base: String,
}

async fn serve(env: &mut TestEnv) -> Server {
    env.set("CXRELAY_API_TOKENS", format!("{OPERATE},{READ}:read,{INGEST}:ingest"));
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let proc = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    let base = format!("http://{addr}");
    env.wait_http_ok(&format!("{base}/readyz")).await;
    Server { _proc: proc, base }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn ndjson(n: usize, failing: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let item = if failing.contains(&i) { json!({"n": i, "_sim": {"status": 400}}) } else { json!({"n": i}) };
        out.extend(serde_json::to_vec(&item).unwrap());
        out.push(b'\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_the_error_shape() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let s = serve(&mut env).await;
    let c = client();
    let (code, body) = call(c.get(format!("{}/v1/runs", s.base))).await;
    assert_eq!(code, 401);
    assert_eq!(body["error"]["code"], json!("unauthorized"), "{body}");
    let (code, _) = call(c.get(format!("{}/v1/runs", s.base)).bearer_auth("wrong-token-xyz")).await;
    assert_eq!(code, 401);
    let (code, body) =
        call(c.post(format!("{}/v1/runs?action=a", s.base)).bearer_auth(READ).header("content-type", "application/json").body("[{}]")).await;
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("read"), "{body}");
    let (code, _) = call(c.get(format!("{}/v1/runs", s.base)).bearer_auth(INGEST)).await;
    assert_eq!(code, 403, "ingest cannot read");
    let (code, _) = call(c.post(format!("{}/v1/runs/x/pause", s.base)).bearer_auth(READ)).await;
    assert_eq!(code, 403, "read cannot operate");
    let (code, body) = call(c.get(format!("{}/v1/runs", s.base)).bearer_auth(OPERATE)).await;
    assert_eq!(code, 200, "operate implies read: {body}");
    assert_eq!(call(c.get(format!("{}/healthz", s.base))).await.0, 200, "health needs no token");

    // Bad input: a 4xx with the error shape and a message naming what is wrong; never a 5xx.
    let post =
        |q: &str, ct: &str, body: &'static str| c.post(format!("{}/v1/runs{q}", s.base)).bearer_auth(INGEST).header("content-type", ct).body(body);
    for (req, want, says) in [
        (post("?action=a", "text/plain", "[]"), 415, "Content-Type"),
        (post("", "application/json", "[{}]"), 400, "action is required"),
        (post("?action=a&run_id=bad{id", "application/json", "[{}]"), 400, "run id"),
        (post("?action=a&run_id=broken", "application/json", "[{\"a\": 1}, {\"b\": "), 400, "line 1"),
        (post("?action=a", "application/json", "[]"), 400, "no items"),
        (post("?action=a&run_id=unclosed", "text/csv", "id,note\n1,\"open\n2,x\n"), 400, "malformed CSV at line 2"),
        (post("?action=a&max_items=x", "application/json", "[{}]"), 400, "max_items"),
        (c.get(format!("{}/v1/runs/nosuch", s.base)).bearer_auth(READ), 404, "run nosuch not found"),
        (c.get(format!("{}/v1/runs?cursor=bogus", s.base)).bearer_auth(READ), 400, "cursor"),
        (c.get(format!("{}/v1/runs?status=done", s.base)).bearer_auth(READ), 400, "status \"done\""),
        (c.get(format!("{}/v1/runs?limit=0", s.base)).bearer_auth(READ), 400, "limit"),
        (c.get(format!("{}/v1/nothing", s.base)).bearer_auth(READ), 404, "no such endpoint"),
    ] {
        let (code, body) = call(req).await;
        assert_eq!(code, want, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("error shape: {body}"));
        assert!(message.contains(says), "{message}");
    }
    // An oversized JSON body: 413 with the error shape (the limit is serve.max_body_bytes, 1 MiB).
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(2 << 20));
    for path in ["/v1/runs/any/replay", "/v1/runs/any/pause"] {
        // A client of its own: the server answers before reading such a body and then closes the
        // connection, which a pooled connection would only notice on its next request.
        let (code, body) =
            call(client().post(format!("{}{path}", s.base)).bearer_auth(OPERATE).header("content-type", "application/json").body(huge.clone())).await;
        assert_eq!(code, 413, "{path}: {body}");
        assert_eq!(body["error"]["code"], json!("payload_too_large"), "{body}");
    }

    // The body that broke halfway left no run behind.
    let (code, _) = call(c.get(format!("{}/v1/runs/broken", s.base)).bearer_auth(READ)).await;
    assert_eq!(code, 404, "a broken body leaves no half-created run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_ingest_idempotent_submission_paging_and_operations() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let s = serve(&mut env).await;
    let c = client();

    // 100,000 items in one NDJSON body.
    let big = ndjson(100_000, &[]);
    let (code, summary) = call(
        c.post(format!("{}/v1/runs?action=act-1&run_id=big", s.base)).bearer_auth(INGEST).header("content-type", "application/x-ndjson").body(big),
    )
    .await;
    assert_eq!(code, 201, "{summary}");
    assert_eq!((summary["run_id"].as_str(), summary["accepted"].as_u64()), (Some("big"), Some(100_000)));

    // CSV by its Content-Type, with a delimiter.
    let (code, summary) = call(
        c.post(format!("{}/v1/runs?action=act-1&run_id=csv&delimiter=pipe", s.base))
            .bearer_auth(INGEST)
            .header("content-type", "text/csv")
            .body("id|name\n1|a\n2|\"b|c\"\n"),
    )
    .await;
    assert_eq!((code, summary["accepted"].as_u64()), (201, Some(2)), "{summary}");

    // The same submission twice with one Idempotency-Key: one run, nothing enqueued twice.
    let submit = || {
        c.post(format!("{}/v1/runs?action=act-1", s.base))
            .bearer_auth(INGEST)
            .header("content-type", "application/json")
            .header("idempotency-key", "order-batch-7")
            .body(serde_json::to_vec(&(0..10).map(|i| json!({"n": i})).collect::<Vec<_>>()).unwrap())
    };
    let (first_code, first) = call(submit()).await;
    let (second_code, second) = call(submit()).await;
    assert_eq!((first_code, second_code), (201, 200), "{first} {second}");
    assert_eq!(first["run_id"], second["run_id"]);
    assert_eq!((second["accepted"].as_u64(), second["already_enqueued"].as_u64()), (Some(0), Some(10)));
    let run = first["run_id"].as_str().unwrap().to_owned();
    let (_, report) = call(c.get(format!("{}/v1/runs/{run}", s.base)).bearer_auth(READ)).await;
    assert_eq!(report["accepted"], json!(10), "{report}");

    // Paging: every run once, a page at a time.
    for i in 0..5 {
        let (code, _) = call(
            c.post(format!("{}/v1/runs?action=a&run_id=p{i}", s.base))
                .bearer_auth(INGEST)
                .header("content-type", "application/json")
                .body("[{\"x\": 1}]"),
        )
        .await;
        assert_eq!(code, 201);
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{}/v1/runs?limit=2&cursor={c}", s.base),
            None => format!("{}/v1/runs?limit=2", s.base),
        };
        let (code, page) = call(c.get(url).bearer_auth(READ)).await;
        assert_eq!(code, 200, "{page}");
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 2);
        for r in runs {
            assert!(seen.insert(r["run_id"].as_str().unwrap().to_owned()), "a run listed twice");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");

    // Operations: failed items, replay refusals, pause / resume, through the API.
    let (code, _) = call(
        c.post(format!("{}/v1/runs?action=act-1&run_id=ops", s.base))
            .bearer_auth(INGEST)
            .header("content-type", "application/x-ndjson")
            .body(ndjson(30, &[4, 9])),
    )
    .await;
    assert_eq!(code, 201);
    let _w = env.spawn_worker(4);
    env.wait_finished("ops", Duration::from_secs(60)).await;
    let (code, failed) = call(c.get(format!("{}/v1/runs/ops/failed?limit=1", s.base)).bearer_auth(READ)).await;
    assert_eq!(code, 200, "{failed}");
    assert_eq!(failed["items"][0]["index"], json!(4));
    let next = failed["next_cursor"].as_str().unwrap();
    let (_, rest) = call(c.get(format!("{}/v1/runs/ops/failed?limit=1&cursor={next}", s.base)).bearer_auth(READ)).await;
    assert_eq!(rest["items"][0]["index"], json!(9), "{rest}");
    assert!(rest["next_cursor"].is_null(), "{rest}");
    let (code, item) = call(c.get(format!("{}/v1/runs/ops/items/4", s.base)).bearer_auth(READ)).await;
    assert_eq!((code, item["state"].clone()), (200, json!("failed")), "{item}");
    let (code, out) = call(
        c.post(format!("{}/v1/runs/ops/replay", s.base)).bearer_auth(OPERATE).json(&json!({"index": "0,4", "reason": "api test", "dry_run": true})),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!((out["replayed"].clone(), out["refused"][0]["index"].clone()), (json!([4]), json!(0)), "{out}");
    let (code, body) =
        call(c.post(format!("{}/v1/runs/ops/replay", s.base)).bearer_auth(OPERATE).json(&json!({"index": "3,,x", "reason": "r"}))).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(c.post(format!("{}/v1/runs/ops/replay", s.base)).bearer_auth(OPERATE).json(&json!({"all_failed": true}))).await;
    assert_eq!(code, 400, "reason is required: {body}");
    let (code, body) = call(c.post(format!("{}/v1/runs/ops/pause", s.base)).bearer_auth(OPERATE)).await;
    assert_eq!(code, 409, "a finished run is not paused: {body}");
    assert_eq!(body["error"]["code"], json!("not_allowed"));
    let (code, audit) = call(c.get(format!("{}/v1/runs/ops/audit", s.base)).bearer_auth(READ)).await;
    assert_eq!(code, 200);
    assert!(audit["events"].as_array().unwrap().iter().any(|e| e["type"] == "run.finished"), "{audit}");
    let (code, workers) = call(c.get(format!("{}/v1/workers", s.base)).bearer_auth(READ)).await;
    assert_eq!(code, 200);
    assert!(workers.is_array());
    assert_eq!(call(c.delete(format!("{}/v1/runs/ops", s.base)).bearer_auth(OPERATE)).await.0, 204);
    assert_eq!(call(c.get(format!("{}/v1/runs/ops", s.base)).bearer_auth(READ)).await.0, 404);
}

/// Redis down: `/healthz` still answers, `/readyz` and the API say 503 in the error shape, with
/// the Redis URL's password masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_a_503_and_not_ready() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    env.set("REDIS_URL", format!("redis://:pw-canary-55@{closed}"));
    env.set("CXRELAY_API_TOKENS", READ.to_owned() + ":read");
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _serve = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    let base = format!("http://{addr}");
    env.wait_http_ok(&format!("{base}/healthz")).await;
    let (code, body) = call(client().get(format!("{base}/readyz"))).await;
    assert_eq!(code, 503, "{body}");
    let (code, body) = call(client().get(format!("{base}/v1/runs")).bearer_auth(READ)).await;
    assert_eq!((code, body["error"]["code"].as_str()), (503, Some("redis_unavailable")), "{body}");
    assert!(!body.to_string().contains("pw-canary-55"));
}

/// The dashboard's session cookie is HttpOnly and SameSite=Strict, and `Secure` when
/// `CXRELAY_SERVE_SECURE_COOKIES` says the dashboard is reached over TLS; signing out clears it
/// with the same attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_served_over_tls() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let no_redirect = || reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for secure in [false, true] {
        env.set("CXRELAY_SERVE_SECURE_COOKIES", secure);
        let s = serve(&mut env).await;
        let signed_in = no_redirect().post(format!("{}/login", s.base)).form(&[("token", READ)]).send().await.unwrap();
        assert_eq!(signed_in.status().as_u16(), 303);
        let cookie = signed_in.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
    }
    let bad = env.cxrelay().env("CXRELAY_SERVE_SECURE_COOKIES", "yes please").args(["serve", "--addr", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CXRELAY_SERVE_SECURE_COOKIES"), "{}", String::from_utf8_lossy(&bad.stderr));
}
